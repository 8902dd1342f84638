//! [`Preprocessing`]: how a raw input (an image, a CSV row) becomes a model input.
//!
//! The loaders produce their data sets through these same functions, so a saved model's
//! `Preprocessing` maps a new raw input to exactly the vector the loader would have produced.

use super::DataError;
use image::imageops::FilterType;
use image::DynamicImage;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Everything needed to turn a raw input into the model's input vector.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Preprocessing {
    /// Images: converted to grayscale (`channels == 1`) or RGB (`channels == 3`), resized to
    /// `height x width` (bilinear) if needed, laid out HWC, each value `pixel * scale`.
    Image {
        height: usize,
        width: usize,
        channels: usize,
        /// Multiplier of the 0..=255 pixel values (1/255).
        scale: f32,
    },
    /// Tables: one [`ColumnTransform`] per feature column, in model-input order.
    Table {
        /// The label column (ignored in prediction inputs if present).
        target: String,
        columns: Vec<ColumnTransform>,
    },
}

/// How one CSV column becomes model inputs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColumnTransform {
    /// The column's header name.
    pub name: String,
    pub kind: ColumnKind,
}

/// A numeric column becomes one standardized value; a categorical one a one-hot block.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ColumnKind {
    /// `(value - mean) / std`; a missing value is replaced by `impute` (the train mean) first.
    Numeric { mean: f64, std: f64, impute: f64 },
    /// One input per vocabulary entry (1 for the value, 0 elsewhere; all 0 for an unseen value);
    /// a missing value is replaced by `impute` (the train's most frequent value) first.
    Categorical {
        vocabulary: Vec<String>,
        impute: String,
    },
}

impl ColumnKind {
    /// Number of model inputs this column produces.
    pub fn width(&self) -> usize {
        match self {
            ColumnKind::Numeric { .. } => 1,
            ColumnKind::Categorical { vocabulary, .. } => vocabulary.len(),
        }
    }

    /// Appends this column's inputs for one raw field (`None` = missing) to `out`. Returns
    /// false for a value unlike any the training saw: a category outside the vocabulary (all
    /// zeros) or text in a numeric column (imputed). A non-finite number is a missing value.
    pub(crate) fn encode(&self, field: Option<&str>, out: &mut Vec<f32>) -> bool {
        match self {
            ColumnKind::Numeric { mean, std, impute } => {
                let parsed = field.map(|f| f.trim().parse::<f64>());
                let v = match parsed {
                    Some(Ok(v)) if v.is_finite() => v,
                    _ => *impute,
                };
                out.push(((v - mean) / std) as f32);
                !matches!(parsed, Some(Err(_)))
            }
            ColumnKind::Categorical { vocabulary, impute } => {
                let v = field.unwrap_or(impute);
                let start = out.len();
                out.resize(start + vocabulary.len(), 0.0);
                match vocabulary.binary_search_by(|s| s.as_str().cmp(v)) {
                    Ok(k) => {
                        out[start + k] = 1.0;
                        true
                    }
                    Err(_) => false,
                }
            }
        }
    }
}

/// Missing-value markers (compared case-insensitively after trimming).
pub(crate) fn is_missing(field: &str) -> bool {
    let f = field.trim();
    f.is_empty()
        || f == "?"
        || f.eq_ignore_ascii_case("na")
        || f.eq_ignore_ascii_case("n/a")
        || f.eq_ignore_ascii_case("nan")
        || f.eq_ignore_ascii_case("null")
}

/// A finite number, or `None`.
pub(crate) fn parse_number(field: &str) -> Option<f64> {
    field.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

impl Preprocessing {
    /// Checks a preprocessing read from a file: image sides and channels a model can take, a
    /// finite scale, finite column statistics and sorted vocabularies (one-hot lookups rely on
    /// the order).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Preprocessing::Image {
                height,
                width,
                channels,
                scale,
            } => {
                if *height == 0 || *width == 0 || !matches!(channels, 1 | 3) {
                    return Err(format!(
                        "the image preprocessing is {height}x{width} with {channels} channels; sides must be at least 1 and channels 1 or 3"
                    ));
                }
                if !scale.is_finite() {
                    return Err(format!("the image scale is {scale}; it must be finite"));
                }
            }
            Preprocessing::Table { columns, .. } => {
                if columns.is_empty() {
                    return Err("the table preprocessing has no columns".to_string());
                }
                for c in columns {
                    match &c.kind {
                        ColumnKind::Numeric { mean, std, impute } => {
                            if !(mean.is_finite() && impute.is_finite() && std.is_finite())
                                || *std <= 0.0
                            {
                                return Err(format!(
                                    "column `{}` has mean {mean}, std {std}, impute {impute}; each must be finite and std > 0",
                                    c.name
                                ));
                            }
                        }
                        ColumnKind::Categorical { vocabulary, .. } => {
                            if !vocabulary.windows(2).all(|w| w[0] < w[1]) {
                                return Err(format!(
                                    "column `{}`'s vocabulary is not sorted and distinct",
                                    c.name
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Shape of one model input: `[h, w, c]` for images, `[features]` for tables.
    pub fn input_shape(&self) -> Vec<usize> {
        match self {
            Preprocessing::Image {
                height,
                width,
                channels,
                ..
            } => vec![*height, *width, *channels],
            Preprocessing::Table { columns, .. } => {
                vec![columns.iter().map(|c| c.kind.width()).sum()]
            }
        }
    }

    /// Converts a decoded image to the model input (grayscale/RGB, resize, scale).
    /// For a table preprocessing this returns an empty vector.
    pub fn image_to_input(&self, img: &DynamicImage) -> Vec<f32> {
        let Preprocessing::Image {
            height,
            width,
            channels,
            scale,
        } = self
        else {
            return Vec::new();
        };
        let (h, w) = (*height as u32, *width as u32);
        let raw: Vec<u8> = if *channels == 1 {
            let g = img.to_luma8();
            if g.dimensions() == (w, h) {
                g.into_raw()
            } else {
                image::imageops::resize(&g, w, h, FilterType::Triangle).into_raw()
            }
        } else {
            let c = img.to_rgb8();
            if c.dimensions() == (w, h) {
                c.into_raw()
            } else {
                image::imageops::resize(&c, w, h, FilterType::Triangle).into_raw()
            }
        };
        raw.iter().map(|&p| p as f32 * scale).collect()
    }

    /// Reads a PNG/JPEG file and converts it with [`image_to_input`](Self::image_to_input).
    pub fn load_image_file(&self, path: impl AsRef<Path>) -> Result<Vec<f32>, DataError> {
        let path = path.as_ref();
        if !matches!(self, Preprocessing::Image { .. }) {
            return Err(DataError::Incompatible {
                message: format!(
                    "{}: the model was trained on a table, not images; give it a CSV file",
                    path.display()
                ),
            });
        }
        let img = decode_image(path)?;
        Ok(self.image_to_input(&img))
    }

    /// Decodes PNG/JPEG bytes held in memory (an HTTP request body, say) and converts them with
    /// [`image_to_input`](Self::image_to_input). `source` names the bytes in error messages.
    pub fn image_bytes_to_input(&self, bytes: &[u8], source: &str) -> Result<Vec<f32>, DataError> {
        if !matches!(self, Preprocessing::Image { .. }) {
            return Err(DataError::Incompatible {
                message: format!("{source}: the model was trained on a table, not images"),
            });
        }
        let img = decode_image_bytes(bytes, source, self.max_decoded_pixels())?;
        Ok(self.image_to_input(&img))
    }

    /// Reads a CSV with a header and converts every row to a model input. Columns are matched by
    /// name; extra columns (the target among them) are ignored; missing values are imputed.
    pub fn csv_rows_to_inputs(&self, path: &Path) -> Result<Vec<Vec<f32>>, DataError> {
        let Preprocessing::Table { columns, .. } = self else {
            return Err(DataError::Incompatible {
                message: format!(
                    "{}: the model was trained on images, not a table; give it image files",
                    path.display()
                ),
            });
        };
        super::table::prediction_rows(path, columns)
    }
}

/// Opens an image file and decodes it (format from the content, not the extension).
pub(crate) fn decode_image(path: &Path) -> Result<DynamicImage, DataError> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    reader.decode().map_err(|e| DataError::Image {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Pixels an image held in memory (an HTTP body) may have whatever the model: 2048 x 2048.
pub const MIN_DECODED_PIXELS: u64 = 2048 * 2048;

impl Preprocessing {
    /// The most pixels an image for this model may decode to: 16 times the model's input area
    /// (a side 4 times the model's), and at least [`MIN_DECODED_PIXELS`]. A few hundred
    /// compressed bytes can claim any size; larger images are refused before decoding, since
    /// the model would shrink them to its own size anyway.
    pub fn max_decoded_pixels(&self) -> u64 {
        let area = match self {
            Preprocessing::Image { height, width, .. } => (*height as u64) * (*width as u64),
            Preprocessing::Table { .. } => 0,
        };
        area.saturating_mul(16).max(MIN_DECODED_PIXELS)
    }
}

/// Decodes an image held in memory (format from the content), refusing, before it allocates
/// the pixels, one whose decoded size passes `max_pixels` RGBA pixels (4 bytes each).
pub(crate) fn decode_image_bytes(
    bytes: &[u8],
    source: &str,
    max_pixels: u64,
) -> Result<DynamicImage, DataError> {
    const MAX_SIDE: u32 = 16384;
    let image_error = |message: String| DataError::Image {
        path: source.to_string(),
        message,
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| image_error(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(max_pixels.saturating_mul(4));
    reader.limits(limits);
    reader.decode().map_err(|e| image_error(e.to_string()))
}

/// A CSV reader with our settings: header row, trimmed fields, ragged rows allowed (we report them).
pub(crate) fn csv_reader(path: &Path) -> Result<csv::Reader<std::fs::File>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(file))
}

/// The header names; an error if the file is empty.
pub(crate) fn read_header(
    reader: &mut csv::Reader<std::fs::File>,
    shown: &str,
) -> Result<Vec<String>, DataError> {
    let header = reader.headers().map_err(|e| csv_error(shown, e))?.clone();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(DataError::Empty {
            path: shown.to_string(),
            message: "the CSV has no header row; the first line must name the columns".to_string(),
        });
    }
    Ok(header.iter().map(|s| s.to_string()).collect())
}

pub(crate) fn csv_error(shown: &str, e: csv::Error) -> DataError {
    let line = e.position().map_or(0, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8; save the file as UTF-8".to_string(),
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    };
    DataError::Csv {
        path: shown.to_string(),
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_preprocessing() -> Preprocessing {
        Preprocessing::Image {
            height: 28,
            width: 28,
            channels: 1,
            scale: 1.0 / 255.0,
        }
    }

    #[test]
    fn image_bytes_decode_like_the_same_file() {
        let img = image::GrayImage::from_fn(30, 20, |x, y| image::Luma([(x * 7 + y * 3) as u8]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        img.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let pre = seed_preprocessing();
        let from_bytes = pre.image_bytes_to_input(&bytes, "body").unwrap();
        assert_eq!(from_bytes.len(), 28 * 28);
        assert_eq!(from_bytes, pre.load_image_file(&path).unwrap());
    }

    #[test]
    fn images_larger_than_the_model_can_use_are_refused_before_decoding() {
        let pre = seed_preprocessing();
        assert_eq!(pre.max_decoded_pixels(), MIN_DECODED_PIXELS);
        let png = |side: u32| {
            let mut out = std::io::Cursor::new(Vec::new());
            image::GrayImage::new(side, side)
                .write_to(&mut out, image::ImageFormat::Png)
                .unwrap();
            out.into_inner()
        };
        // 1024x1024 is within what a 28x28 model accepts; 8192x8192 (64 MiB) is not.
        assert_eq!(
            pre.image_bytes_to_input(&png(1024), "small").unwrap().len(),
            28 * 28
        );
        let err = pre.image_bytes_to_input(&png(8192), "bomb").unwrap_err();
        assert!(
            err.to_string().starts_with("bomb: cannot decode image"),
            "{err}"
        );
        // A larger model accepts larger images: 16 times its area.
        let big = Preprocessing::Image {
            height: 1024,
            width: 1024,
            channels: 3,
            scale: 1.0,
        };
        assert_eq!(big.max_decoded_pixels(), 16 * 1024 * 1024);
    }

    #[test]
    fn bytes_that_are_no_image_name_their_source() {
        let err = seed_preprocessing()
            .image_bytes_to_input(b"not an image at all", "request body")
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("request body: cannot decode image"),
            "{message}"
        );
    }
}
