//! What a study keeps: the records a storage writes and the search reads. They sit below both
//! [`crate::store`] and [`crate::search`], so storage never imports the search above it.
//!
//! - [`distribution`]: what one hyperparameter may take ([`Distribution`]) and its value
//!   ([`ParamValue`]);
//! - [`frozen_trial`]: a trial as stored ([`FrozenTrial`], its [`TrialState`], parameters and
//!   owner); the live, define-by-run trial is [`crate::search::Trial`];
//! - [`direction`]: minimize or maximize ([`Direction`]).

pub mod direction;
pub mod distribution;
pub mod frozen_trial;

pub use direction::Direction;
pub use distribution::{format_float, Distribution, ParamValue};
pub use frozen_trial::{best_trial, now_unix, FrozenTrial, Owner, ParamRecord, TrialState};
