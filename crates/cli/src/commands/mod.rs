//! One module per subcommand: each turns its arguments into library calls and prints results.

pub mod auto;
pub mod dashboard;
pub mod deploy;
pub mod evaluate;
pub mod explain;
pub mod export;
pub mod predict;
pub mod report;
pub mod serve;
pub mod studies;
pub mod train;
pub mod tune;
pub mod worker;

use modelsmith::data::DataError;
use modelsmith::model::ModelError;

/// A problem with what the user gave us, found by the CLI itself.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// 2 for bad input (flags, configs, data or model files), 1 for everything else.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let bad_input = err.chain().any(|cause| {
        cause.is::<BadInput>()
            || cause.is::<DataError>()
            || cause.is::<ModelError>()
            || cause
                .downcast_ref::<modelsmith_server::ServeError>()
                .is_some_and(modelsmith_server::ServeError::is_bad_input)
            || cause
                .downcast_ref::<modelsmith::store::StoreError>()
                .is_some_and(modelsmith::store::StoreError::is_bad_input)
            || cause
                .downcast_ref::<modelsmith::report::ReportError>()
                .is_some_and(modelsmith::report::ReportError::is_bad_input)
            || cause
                .downcast_ref::<modelsmith::Error>()
                .is_some_and(modelsmith::Error::is_bad_input)
    });
    if bad_input {
        2
    } else {
        1
    }
}

/// Prints `value` as one JSON object on stdout (for `--json`).
pub fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(value).expect("serializable"));
}

/// `--storage-password-file FILE`: the storage reads the password from it (through the
/// environment, so every storage opened by this process sees it).
pub fn use_password_file(path: Option<&std::path::Path>) {
    if let Some(path) = path {
        std::env::set_var("MODELSMITH_STORAGE_PASSWORD_FILE", path);
    }
}

/// `--threads N`: the size of the global rayon pool (default: all cores).
pub fn init_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        if n == 0 {
            return Err(BadInput("--threads must be at least 1".into()).into());
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    Ok(())
}

/// Resolves `--device` once for the whole command and says what it chose (`auto` says why).
pub fn resolve_device(
    device: modelsmith::train::Device,
) -> anyhow::Result<modelsmith::train::Device> {
    let (chosen, said) = device.resolve()?;
    if device != modelsmith::train::Device::Cpu {
        eprintln!("{said}");
    }
    Ok(chosen)
}

/// The data set a training config names, loaded with its options ([`TrainConfig::load_options`]).
pub fn load_training_data(
    config: &modelsmith::train::TrainConfig,
) -> anyhow::Result<modelsmith::data::LoadedData> {
    Ok(modelsmith::data::load(
        &config.data,
        &config.load_options(),
    )?)
}

/// The test figures of the task: `accuracy 97.50%`, or `rmse 531.2  mae 270.1  r2 0.9821`.
pub(crate) fn test_figures(s: &modelsmith::task::Scores) -> String {
    match (s.accuracy, s.rmse, s.mae, s.r2) {
        (Some(a), ..) => format!("accuracy {:.2}%", a * 100.0),
        (_, Some(rmse), Some(mae), Some(r2)) => format!(
            "rmse {}  mae {}  r2 {r2:.4}",
            modelsmith::task::significant(rmse),
            modelsmith::task::significant(mae)
        ),
        _ => "not measured".to_string(),
    }
}
