//! Data sets: loading (IDX, CSV, image folders), preprocessing, splits, batching, augmentation.
//!
//! [`load`] turns a data SPEC into a [`LoadedData`]: a train and a test [`Dataset`], already
//! preprocessed into `f32` model inputs, plus [`DataInfo`] — the class names and the
//! [`Preprocessing`] that maps a raw new input (an image file, a CSV row) to the same model input.
//!
//! # Data SPECs
//! - `digits`: the bundled real MNIST digits (8,000 train / 2,000 test), embedded in the library.
//! - `fashion-mnist`: the Debian package `dataset-fashion-mnist`, which installs
//!   `/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`
//!   (folder overridable with [`LoadOptions::fashion_mnist_dir`]).
//! - `idx:DIR`: the four standard IDX file names in DIR, each raw or `.gz` (gzip is detected by
//!   content, so either name works); the `train-images.idx3-ubyte` spelling is accepted too.
//! - `csv:FILE`: a CSV with a header; [`LoadOptions::target`] names the label column.
//! - `images:DIR`: one subfolder per class holding PNG/JPEG files, or `DIR/train` and `DIR/test`
//!   each laid out that way.
//!
//! # Decisions
//! - Images are HWC (channels last) `f32` in `[0, 1]`: pixel × (1/255), as the Keras seed does.
//! - Sources without their own test split (CSV, a single image folder) are split with
//!   [`split_indices`]: stratified by class (each class contributes ≈ `test_fraction` of its
//!   examples, so the test set has the training distribution), deterministic by seed. The held-out
//!   part is never empty when `fraction > 0` and there are ≥ 2 examples, and never takes everything.
//!   Both parts keep the original file order (the trainer shuffles).
//! - CSV: a column is categorical if any non-missing value fails to parse as a finite `f64`.
//!   Numeric columns are standardized with mean/std computed on the TRAIN part only (std 0 → 1);
//!   categorical columns are one-hot encoded with the vocabulary seen in TRAIN (sorted); a category
//!   unseen in training maps to all zeros. Missing values (`""`, `NA`, `N/A`, `NaN`, `null`, `?`,
//!   case-insensitive) are imputed with the train mean / most frequent category, or rejected with
//!   [`MissingPolicy::Reject`]. A missing *target* is always an error. Class names are the distinct
//!   target values, sorted numerically if all are numbers, else as strings. Feature order is the
//!   header order without the target, each categorical column expanded in place.
//! - Prediction-time CSVs ([`Preprocessing::csv_rows_to_inputs`]) match columns by header name,
//!   ignore extra columns (the target included) and always impute missing values.
//! - Image folders: files sorted by name, class names = subfolder names sorted. Every image is
//!   resized (bilinear, `image`'s `Triangle` filter) to the most common size (ties: the first in
//!   that order); grayscale if every image is grayscale, else RGB (alpha dropped).
//!
//! # Speed (release, 2 cores)
//! The full Fashion-MNIST (60k + 10k) loads in ≈ 0.27 s: the four files are read in parallel and
//! a gzip images file is decompressed on its own thread while its pixels are converted as they
//! arrive (the conversion is mostly page faults of the 188 MB output). The bundled digits load in
//! ≈ 0.03 s. [`Augment::light`] on 60k 28x28 images takes ≈ 0.35 s per epoch.

mod augment;
mod error;
mod idx;
mod images;
mod preprocess;
mod table;

pub use augment::Augment;
pub use error::DataError;
pub use preprocess::{ColumnKind, ColumnTransform, Preprocessing};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::task::{Task, TaskKind};
use std::path::PathBuf;

/// An in-memory, preprocessed data set, ready to train on.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// All examples back to back: `len() * example_len()` values, each laid out per `shape`.
    pub x: Vec<f32>,
    /// Class index per example, `< num_classes`. For regression, the example's stratum (which
    /// tenth of the first target's values it falls in), so that splits stratified by `y` keep
    /// the target's distribution.
    pub y: Vec<u32>,
    /// Regression only: the standardized targets (see [`crate::task::TargetScale`]), `len() *
    /// targets` values. Empty for classification.
    pub values: Vec<f32>,
    /// Shape of one example: `[h, w, c]` (HWC) for images, `[features]` for tables.
    pub shape: Vec<usize>,
    /// Number of classes (regression: of strata). The model's output width is the task's.
    pub num_classes: usize,
}

impl Dataset {
    /// An empty data set with this example shape.
    pub fn empty(shape: Vec<usize>, num_classes: usize) -> Dataset {
        Dataset {
            x: Vec::new(),
            y: Vec::new(),
            values: Vec::new(),
            shape,
            num_classes,
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Number of `f32` values in one example (the product of `shape`).
    pub fn example_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Example `i`'s values. Panics if `i >= len()`.
    pub fn example(&self, i: usize) -> &[f32] {
        let n = self.example_len();
        &self.x[i * n..(i + 1) * n]
    }

    /// Number of examples per class (`num_classes` entries).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &y in &self.y {
            counts[y as usize] += 1;
        }
        counts
    }

    /// The examples at `indices`, in that order (repeats allowed). Panics on an out-of-range index.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut values = Vec::new();
        self.gather(indices, &mut x, &mut y);
        self.gather_values(indices, &mut values);
        Dataset {
            x,
            y,
            values,
            shape: self.shape.clone(),
            num_classes: self.num_classes,
        }
    }

    /// Deterministic shuffle split into `(rest, held_out)` with `held_out.len() ≈ fraction * len()`,
    /// stratified by class; see [`split_indices`].
    pub fn split(&self, fraction: f32, seed: u64) -> (Dataset, Dataset) {
        let (rest, held) = split_indices(&self.y, fraction, seed);
        (self.subset(&rest), self.subset(&held))
    }

    /// Fold `fold` of a stratified `folds`-fold partition as `(rest, held_out)`; see
    /// [`fold_indices`].
    pub fn fold(&self, folds: usize, fold: usize, seed: u64) -> (Dataset, Dataset) {
        let (rest, held) = fold_indices(&self.y, folds, fold, seed);
        (self.subset(&rest), self.subset(&held))
    }

    /// `self` followed by `other`. The example shapes must agree; `num_classes` is the larger.
    pub fn concat(&self, other: &Dataset) -> Result<Dataset, DataError> {
        if self.shape != other.shape {
            return Err(DataError::Incompatible {
                message: format!(
                    "cannot concatenate data sets with example shapes {:?} and {:?}",
                    self.shape, other.shape
                ),
            });
        }
        let mut x = Vec::with_capacity(self.x.len() + other.x.len());
        x.extend_from_slice(&self.x);
        x.extend_from_slice(&other.x);
        let mut y = Vec::with_capacity(self.y.len() + other.y.len());
        y.extend_from_slice(&self.y);
        y.extend_from_slice(&other.y);
        let values = [self.values.as_slice(), &other.values].concat();
        Ok(Dataset {
            x,
            y,
            values,
            shape: self.shape.clone(),
            num_classes: self.num_classes.max(other.num_classes),
        })
    }

    /// The batching primitive: copies examples `indices` into `x_out` (cleared and resized to
    /// `indices.len() * example_len()`) and their labels into `y_out`. Reuses the buffers'
    /// capacity, so a training loop allocates nothing per step. Panics on an out-of-range index.
    pub fn gather(&self, indices: &[usize], x_out: &mut Vec<f32>, y_out: &mut Vec<u32>) {
        let n = self.example_len();
        x_out.clear();
        x_out.reserve(indices.len() * n);
        y_out.clear();
        y_out.reserve(indices.len());
        for &i in indices {
            x_out.extend_from_slice(&self.x[i * n..(i + 1) * n]);
            y_out.push(self.y[i]);
        }
    }

    /// Regression targets per example (0 for classification).
    pub fn values_per_example(&self) -> usize {
        self.values.len().checked_div(self.len()).unwrap_or(0)
    }

    /// Copies the regression targets of examples `indices` into `out` (cleared; stays empty for
    /// classification), reusing its capacity like [`Dataset::gather`].
    pub fn gather_values(&self, indices: &[usize], out: &mut Vec<f32>) {
        let k = self.values_per_example();
        out.clear();
        out.reserve(indices.len() * k);
        for &i in indices {
            out.extend_from_slice(&self.values[i * k..(i + 1) * k]);
        }
    }
}

/// Deterministic, stratified split of example indices into `(rest, held_out)`.
///
/// Each class's examples are shuffled with the seed and placed at evenly spaced "positions"
/// `(rank + 0.5) / class_size`; the `round(fraction * n)` examples with the smallest positions are
/// held out. So every class contributes its share (up to rounding) and the total is exact. If
/// `fraction > 0` and `n >= 2`, at least one example is held out and at least one kept. Both lists
/// are sorted ascending.
pub fn split_indices(labels: &[u32], fraction: f32, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let n = labels.len();
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut k = (fraction as f64 * n as f64).round() as usize;
    if fraction > 0.0 && n >= 2 {
        k = k.clamp(1, n - 1);
    }
    let k = k.min(n);
    let num_classes = labels.iter().map(|&y| y as usize + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &y) in labels.iter().enumerate() {
        by_class[y as usize].push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // (position, tie-break, index)
    let mut keyed: Vec<(f64, u64, usize)> = Vec::with_capacity(n);
    for members in &mut by_class {
        members.shuffle(&mut rng);
        let m = members.len() as f64;
        for (rank, &i) in members.iter().enumerate() {
            keyed.push(((rank as f64 + 0.5) / m, rng.gen(), i));
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut held: Vec<usize> = keyed[..k].iter().map(|t| t.2).collect();
    let mut rest: Vec<usize> = keyed[k..].iter().map(|t| t.2).collect();
    held.sort_unstable();
    rest.sort_unstable();
    (rest, held)
}

/// Fold `fold` (< `folds`) of a deterministic, stratified k-fold partition of example indices,
/// as `(rest, held_out)`: each class's examples (a regression's strata) are shuffled with the
/// seed and dealt to the folds in turn, so every fold holds its share of every class and the
/// folds partition the examples. Both lists are sorted ascending.
pub fn fold_indices(
    labels: &[u32],
    folds: usize,
    fold: usize,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let folds = folds.max(1);
    let num_classes = labels.iter().map(|&y| y as usize + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &y) in labels.iter().enumerate() {
        by_class[y as usize].push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut rest, mut held) = (Vec::new(), Vec::new());
    // A running offset keeps small classes from all landing in the first folds.
    let mut dealt = 0usize;
    for members in &mut by_class {
        members.shuffle(&mut rng);
        for &i in members.iter() {
            if dealt % folds == fold {
                held.push(i);
            } else {
                rest.push(i);
            }
            dealt += 1;
        }
    }
    rest.sort_unstable();
    held.sort_unstable();
    (rest, held)
}

/// A loaded data source: train and test sets plus what is needed to preprocess new inputs.
#[derive(Clone, Debug)]
pub struct LoadedData {
    pub train: Dataset,
    pub test: Dataset,
    pub info: DataInfo,
    /// For a table: the task its target is learned as and why, in one line for the user
    /// (`regression: `target` has 214 distinct integer values in 353 rows; --task …`).
    pub task_choice: Option<String>,
}

/// What a saved model needs to know about its data.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(from = "DataInfoFile")]
pub struct DataInfo {
    /// The data SPEC the model was trained on, as given.
    pub spec: String,
    /// What the model predicts: classes (with their names) or values (with their scales).
    pub task: Task,
    /// How to turn a raw input into a model input.
    pub preprocessing: Preprocessing,
}

/// `DataInfo` as `model.json` holds it: folders written before tasks existed name their
/// classes in `class_names` instead of a `task`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataInfoFile {
    spec: String,
    #[serde(default)]
    task: Option<Task>,
    #[serde(default)]
    class_names: Vec<String>,
    preprocessing: Preprocessing,
}

impl From<DataInfoFile> for DataInfo {
    fn from(f: DataInfoFile) -> DataInfo {
        DataInfo {
            spec: f.spec,
            task: f.task.unwrap_or(Task::Classification {
                classes: f.class_names,
            }),
            preprocessing: f.preprocessing,
        }
    }
}

impl DataInfo {
    /// Name of each class, by class index (empty for regression).
    pub fn class_names(&self) -> &[String] {
        self.task.class_names()
    }

    /// The target column of a table's data (`None` for images).
    pub fn target_column(&self) -> Option<String> {
        match &self.preprocessing {
            Preprocessing::Table { target, .. } => Some(target.clone()),
            Preprocessing::Image { .. } => None,
        }
    }
}

/// What to do with missing values in a CSV.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    /// Numeric: the train mean; categorical: the train's most frequent value.
    #[default]
    Impute,
    /// Fail with an error naming the line and column.
    Reject,
}

/// Options for [`load`].
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// CSV target column, or columns separated by commas (`a,b`: a regression on both);
    /// required for `csv:FILE`, ignored otherwise.
    pub target: Option<String>,
    /// The task to learn a CSV's target as; `None` lets [`crate::task::choose`] decide.
    pub task: Option<TaskKind>,
    /// Held-out fraction for sources without their own test split; in `(0, 1)`. Default 0.2.
    pub test_fraction: f32,
    /// Seed of the train/test split.
    pub seed: u64,
    /// Missing values in CSVs. Default [`MissingPolicy::Impute`].
    pub missing: MissingPolicy,
    /// Where `fashion-mnist` is looked for. Default `/usr/share/datasets/fashion-mnist`.
    pub fashion_mnist_dir: PathBuf,
    /// One-hot encode string columns with very many distinct values instead of refusing them.
    pub allow_high_cardinality: bool,
    /// A user's own test data (a SPEC): scored whole with the preprocessing fitted on the main
    /// source, which then keeps every example for training instead of carving a test part out.
    pub test_data: Option<String>,
}

/// Where the Debian package `dataset-fashion-mnist` installs its files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            target: None,
            task: None,
            test_fraction: 0.2,
            seed: 0,
            missing: MissingPolicy::Impute,
            fashion_mnist_dir: PathBuf::from(FASHION_MNIST_DIR),
            allow_high_cardinality: false,
            test_data: None,
        }
    }
}

/// Class names of Fashion-MNIST, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// What encoding a user's file with a model's preprocessing met: how many examples, and per
/// column how many values the training never saw (categories outside the vocabulary, text in a
/// numeric column) and how many non-finite numbers were read as missing.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct EncodingReport {
    pub examples: usize,
    pub unseen_categories: BTreeMap<String, usize>,
    pub non_finite: BTreeMap<String, usize>,
}

/// A user's held-out data, encoded with a trained model's preprocessing.
#[derive(Clone, Debug)]
pub struct HeldOut {
    /// Every example of the source (a data set with its own test part: that part).
    pub data: Dataset,
    pub report: EncodingReport,
}

/// Loads data to score a trained model on, with the model's saved preprocessing and classes
/// (`info`), never refitting anything: `csv:FILE` whole (columns by header name, categories by
/// the training vocabulary, target by the training classes; `opts.target` overrides the
/// trained target's name), `images:DIR` whole (or its `test/` part), and the test part of
/// `digits`, `fashion-mnist` and `idx:DIR`.
pub fn load_held_out(
    spec: &str,
    info: &DataInfo,
    opts: &LoadOptions,
) -> Result<HeldOut, DataError> {
    let spec_trimmed = spec.trim();
    let (data, report) = if let Some(file) = spec_trimmed.strip_prefix("csv:") {
        table::held_out_csv(
            std::path::Path::new(file),
            &info.preprocessing,
            &info.task,
            opts.target.as_deref(),
        )?
    } else if let Some(dir) = spec_trimmed.strip_prefix("images:") {
        let data = images::held_out_folder(
            std::path::Path::new(dir),
            &info.preprocessing,
            info.class_names(),
        )?;
        (data, EncodingReport::default())
    } else {
        let own_split = LoadOptions {
            test_data: None,
            ..opts.clone()
        };
        let loaded = load(spec, &own_split)?;
        let expected = info.preprocessing.input_shape();
        if loaded.test.shape != expected {
            return Err(DataError::Incompatible {
                message: format!(
                    "data '{spec}' has examples of shape {:?} but the model expects {expected:?}",
                    loaded.test.shape
                ),
            });
        }
        let classes = info.class_names().len();
        if info.task.is_regression() || loaded.test.num_classes > classes {
            return Err(DataError::Incompatible {
                message: format!(
                    "data '{spec}' has {} classes but the model predicts {}",
                    loaded.test.num_classes,
                    info.task.describe()
                ),
            });
        }
        let mut data = loaded.test;
        data.num_classes = classes;
        (data, EncodingReport::default())
    };
    if data.is_empty() {
        return Err(DataError::Empty {
            path: spec.to_string(),
            message: "no examples to score".to_string(),
        });
    }
    let report = EncodingReport {
        examples: data.len(),
        ..report
    };
    Ok(HeldOut { data, report })
}

/// Loads the data set named by `spec` (see the module docs for the forms). With
/// [`LoadOptions::test_data`], the test set is that source, read by [`load_held_out`] with the
/// preprocessing fitted here, and `spec` is not split.
pub fn load(spec: &str, opts: &LoadOptions) -> Result<LoadedData, DataError> {
    if let Some(test_spec) = &opts.test_data {
        let whole = LoadOptions {
            test_fraction: 0.0,
            test_data: None,
            ..opts.clone()
        };
        let mut loaded = load_source(spec, &whole)?;
        if !loaded.test.is_empty() {
            // A source with its own test part: that part trains too.
            loaded.train = loaded.train.concat(&loaded.test)?;
        }
        let held = load_held_out(test_spec, &loaded.info, opts)?;
        loaded.train.num_classes = loaded.train.num_classes.max(held.data.num_classes);
        loaded.test = held.data;
        return Ok(loaded);
    }
    let spec_trimmed = spec.trim();
    let needs_split = spec_trimmed.starts_with("csv:") || spec_trimmed.starts_with("images:");
    if needs_split && !(opts.test_fraction > 0.0 && opts.test_fraction < 1.0) {
        return Err(DataError::InvalidOption {
            message: format!(
                "test fraction is {} but must be between 0 and 1 (exclusive), e.g. 0.2",
                opts.test_fraction
            ),
        });
    }
    load_source(spec, opts)
}

/// Loads and splits (when the source has no test part of its own) one source.
fn load_source(spec: &str, opts: &LoadOptions) -> Result<LoadedData, DataError> {
    let spec_trimmed = spec.trim();
    let classes = |names: Vec<String>| Task::Classification { classes: names };
    let mut choice = None;
    let (train, test, task, preprocessing) = if spec_trimmed == "digits" {
        let (train, test) = idx::load_digits()?;
        let names = (0..train.num_classes).map(|i| i.to_string()).collect();
        let pre = idx::preprocessing_for(&train.shape);
        (train, test, classes(names), pre)
    } else if spec_trimmed == "fashion-mnist" {
        let dir = &opts.fashion_mnist_dir;
        if !dir.is_dir() {
            return Err(DataError::FashionMnistMissing {
                dir: dir.display().to_string(),
            });
        }
        let (train, test) = idx::load_dir(dir)?;
        let names = if train.num_classes == FASHION_MNIST_CLASSES.len() {
            FASHION_MNIST_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            (0..train.num_classes).map(|i| i.to_string()).collect()
        };
        let pre = idx::preprocessing_for(&train.shape);
        (train, test, classes(names), pre)
    } else if let Some(dir) = spec_trimmed.strip_prefix("idx:") {
        let (train, test) = idx::load_dir(std::path::Path::new(dir))?;
        let names = (0..train.num_classes).map(|i| i.to_string()).collect();
        let pre = idx::preprocessing_for(&train.shape);
        (train, test, classes(names), pre)
    } else if let Some(file) = spec_trimmed.strip_prefix("csv:") {
        let loaded = table::load_csv(std::path::Path::new(file), opts)?;
        choice = Some(loaded.choice.reason);
        (loaded.train, loaded.test, loaded.task, loaded.preprocessing)
    } else if let Some(dir) = spec_trimmed.strip_prefix("images:") {
        let (train, test, names, pre) = images::load_folder(std::path::Path::new(dir), opts)?;
        (train, test, classes(names), pre)
    } else {
        return Err(DataError::UnknownSpec {
            spec: spec.to_string(),
        });
    };
    tracing::debug!(
        spec,
        train = train.len(),
        test = test.len(),
        shape = ?train.shape,
        task = %task.describe(),
        "loaded data"
    );
    Ok(LoadedData {
        train,
        test,
        info: DataInfo {
            spec: spec.to_string(),
            task,
            preprocessing,
        },
        task_choice: choice,
    })
}
