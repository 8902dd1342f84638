//! Hyperparameter search: spaces, samplers, pruners and the study loop.
//!
//! A [`Study`] runs an objective many times; each [`Trial`] suggests parameters (define-by-run,
//! as in Optuna), the [`sampler`] proposes their values from the study's history, the [`pruner`]
//! stops weak trials early, and every trial is kept in a [`crate::store::Storage`] as a
//! [`FrozenTrial`] (the records live in [`crate::record`], below both; re-exported here).

pub mod declared;
mod owner;
pub mod pruner;
pub mod sampler;
mod study;
mod trial;

pub use crate::record::{
    best_trial, now_unix, Direction, Distribution, FrozenTrial, Owner, ParamRecord, ParamValue,
    TrialState,
};
pub use declared::{DeclKind, ParamDecl, SearchSpace};
pub use owner::{current_owner, owner_is_dead};
pub use study::{
    NoStudyObserver, OptimizeOptions, OptimizeSummary, SearchError, Study, StudyObserver,
    StudyOptions, TrialError,
};
pub use trial::Trial;
