//! Hyperparameter search: spaces, samplers, pruners and the study loop.
//!
//! A [`Study`] runs an objective many times; each [`Trial`] suggests parameters (define-by-run,
//! as in Optuna), the [`sampler`] proposes their values from the study's history, the [`pruner`]
//! stops weak trials early, and every trial is kept in a [`crate::store::Storage`].

pub mod declared;
mod owner;
pub mod pruner;
pub mod sampler;
pub mod space;
mod study;
mod trial;

pub use declared::{DeclKind, ParamDecl, SearchSpace};
pub use owner::{current_owner, owner_is_dead};
pub use space::{Distribution, ParamValue};
pub use study::{
    NoStudyObserver, OptimizeOptions, OptimizeSummary, SearchError, Study, StudyObserver,
    StudyOptions, Trial, TrialError,
};
pub use trial::{best_trial, now_unix, Direction, FrozenTrial, Owner, ParamRecord, TrialState};
