//! [`DataError`]: everything that can go wrong while loading or preprocessing data.
//!
//! Every message is one line: the file (and line, column or field where it applies), what was
//! wrong, and a hint at the fix.

use std::path::Path;

/// Why a data set (or one raw input for prediction) could not be loaded.
#[derive(thiserror::Error, Debug)]
pub enum DataError {
    /// The data SPEC is not one of the known forms.
    #[error(
        "unknown data spec `{spec}`: use digits, fashion-mnist, idx:DIR, csv:FILE or images:DIR"
    )]
    UnknownSpec { spec: String },

    /// A [`LoadOptions`](super::LoadOptions) value is out of range.
    #[error("invalid data option: {message}")]
    InvalidOption { message: String },

    /// A file or directory could not be read.
    #[error("{path}: cannot read: {message}; check that the path exists and is readable")]
    Io { path: String, message: String },

    /// Fashion-MNIST is not installed where it was looked for.
    #[error("fashion-mnist not found at {dir}: install it with `apt-get install -y dataset-fashion-mnist` or use idx:DIR")]
    FashionMnistMissing { dir: String },

    /// One of the four IDX files is missing from an `idx:DIR` folder.
    #[error("{dir}: missing {name} (also tried {name}.gz and the `.idx` spelling); an idx:DIR folder needs train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, raw or .gz")]
    IdxMissingFile { dir: String, name: String },

    /// A gzip stream is corrupt or cut short.
    #[error("{path}: corrupt gzip data ({message}); download the file again")]
    Gzip { path: String, message: String },

    /// The IDX magic number is not the expected one.
    #[error("{path}: not an IDX {what} file: magic number is 0x{found:08x}, expected 0x{expected:08x}; check that the file is the {what} file")]
    IdxMagic {
        path: String,
        what: &'static str,
        found: u32,
        expected: u32,
    },

    /// The IDX header is malformed (e.g. shorter than its dimension list).
    #[error("{path}: bad IDX header: {message}")]
    IdxHeader { path: String, message: String },

    /// The IDX file is longer or shorter than its header says.
    #[error("{path}: IDX file is {actual} bytes but its header describes {expected} bytes ({problem}); the file is damaged, download it again")]
    IdxLength {
        path: String,
        expected: u64,
        actual: u64,
        problem: &'static str,
    },

    /// An images file and its labels file disagree on the number of examples.
    #[error("{images} has {n_images} images but {labels} has {n_labels} labels; the two files must come from the same set")]
    IdxCountMismatch {
        images: String,
        labels: String,
        n_images: usize,
        n_labels: usize,
    },

    /// The data set (or one of its parts) has no examples.
    #[error("{path}: the data set is empty: {message}")]
    Empty { path: String, message: String },

    /// A CSV file could not be parsed.
    #[error("{path}:{line}: CSV parse error: {message}")]
    Csv {
        path: String,
        line: u64,
        message: String,
    },

    /// A CSV row has a different number of fields than the header.
    #[error("{path}:{line}: row has {found} fields but the header has {expected}; fix or remove that line")]
    CsvRagged {
        path: String,
        line: u64,
        expected: usize,
        found: usize,
    },

    /// A regression target that is not a finite number (text, `inf`).
    #[error("{path}:{line}: target column `{column}` holds `{value}`, which is not a finite number; a regression target needs a number on every row (fix or remove that line)")]
    CsvTargetNotNumber {
        path: String,
        line: u64,
        column: String,
        value: String,
    },

    /// The target columns cannot be learned as asked (a constant column, text to regress,
    /// several columns to classify, a column named twice).
    #[error("{path}: {message}")]
    CsvTarget { path: String, message: String },

    /// `csv:FILE` was given without a target column.
    #[error("{path}: no target column given; pass --target COL with one of: {columns}")]
    CsvNoTarget { path: String, columns: String },

    /// The target column is not in the CSV header.
    #[error("{path}: target column `{target}` not found; the columns are: {columns}")]
    CsvUnknownTarget {
        path: String,
        target: String,
        columns: String,
    },

    /// A column needed by the preprocessing is missing from a CSV given for prediction.
    #[error("{path}: column `{column}` is missing from the header; the model was trained with columns: {columns}")]
    CsvMissingColumn {
        path: String,
        column: String,
        columns: String,
    },

    /// A CSV header names a column twice (columns are matched by name).
    #[error("{path}: the header names column `{column}` twice (columns {first} and {second}); columns are matched by name, so rename one")]
    CsvDuplicateColumn {
        path: String,
        column: String,
        first: usize,
        second: usize,
    },

    /// A number that is not finite, under [`MissingPolicy::Reject`](super::MissingPolicy).
    #[error("{path}:{line}: column `{column}` holds `{value}`, which is not a finite number; fix it, or use the impute policy to treat it as missing")]
    CsvNonFinite {
        path: String,
        line: u64,
        column: String,
        value: String,
    },

    /// A string column with about as many distinct values as rows (free text, identifiers).
    #[error("{path}: column `{column}` has {distinct} distinct values in {rows} rows: free text or an identifier, which one-hot encoding cannot learn from; drop the column, or pass --allow-high-cardinality to encode it anyway")]
    CsvHighCardinality {
        path: String,
        column: String,
        distinct: usize,
        rows: usize,
    },

    /// A held-out file's target holds a class the model was not trained on.
    #[error("{path}:{line}: target column `{column}` holds `{value}`, which is not one of the model's classes ({classes}); the model cannot be scored on it")]
    CsvUnseenClass {
        path: String,
        line: u64,
        column: String,
        value: String,
        classes: String,
    },

    /// A value is missing and the policy is [`MissingPolicy::Reject`](super::MissingPolicy).
    #[error(
        "{path}:{line}: column `{column}` is missing a value; fill it in or use the impute policy"
    )]
    CsvMissingValue {
        path: String,
        line: u64,
        column: String,
    },

    /// A row has no target value (labels are never imputed).
    #[error("{path}:{line}: target column `{column}` has no value (`{value}`); targets are never imputed, remove that line or fill it in")]
    CsvMissingTarget {
        path: String,
        line: u64,
        column: String,
        value: String,
    },

    /// An image file could not be decoded.
    #[error("{path}: cannot decode image: {message}; only PNG and JPEG are supported")]
    Image { path: String, message: String },

    /// An `images:DIR` folder is not laid out as one subfolder per class.
    #[error("{dir}: {message}; images:DIR needs one subfolder per class with PNG/JPEG files (or DIR/train and DIR/test, each laid out that way)")]
    ImagesLayout { dir: String, message: String },

    /// Two data sets (or an input and a model) do not fit together.
    #[error("incompatible data: {message}")]
    Incompatible { message: String },
}

impl DataError {
    pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> DataError {
        DataError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}
