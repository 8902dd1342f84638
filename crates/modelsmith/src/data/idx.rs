//! IDX files (the MNIST format), raw or gzip-compressed; the bundled digits.
//!
//! An IDX file is a 4-byte magic number `0x0000 TT NN` (`TT` = element type, `0x08` for u8;
//! `NN` = number of dimensions), `NN` big-endian u32 dimensions, then the elements.
//! Images: magic `0x00000803`, dims `[count, rows, cols]`; labels: `0x00000801`, dims `[count]`.

use super::{DataError, Dataset, Preprocessing};
use flate2::read::MultiGzDecoder;
use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Pixel scale applied to IDX (and image-folder) data: x / 255.
pub(crate) const PIXEL_SCALE: f32 = 1.0 / 255.0;

static DIGITS_TRAIN_IMAGES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/digits/train-images-idx3-ubyte.gz"
));
static DIGITS_TRAIN_LABELS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/digits/train-labels-idx1-ubyte.gz"
));
static DIGITS_TEST_IMAGES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/digits/t10k-images-idx3-ubyte.gz"
));
static DIGITS_TEST_LABELS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/digits/t10k-labels-idx1-ubyte.gz"
));

/// The preprocessing of an IDX data set with example shape `[rows, cols, 1]`: x / 255.
pub(crate) fn preprocessing_for(shape: &[usize]) -> Preprocessing {
    Preprocessing::Image {
        height: shape[0],
        width: shape[1],
        channels: shape[2],
        scale: PIXEL_SCALE,
    }
}

/// The bundled digits, decoded from the bytes embedded in the library.
pub(crate) fn load_digits() -> Result<(Dataset, Dataset), DataError> {
    let name = |f: &str| format!("<bundled digits>/{f}");
    let parts = [
        (DIGITS_TRAIN_IMAGES, name("train-images-idx3-ubyte.gz")),
        (DIGITS_TRAIN_LABELS, name("train-labels-idx1-ubyte.gz")),
        (DIGITS_TEST_IMAGES, name("t10k-images-idx3-ubyte.gz")),
        (DIGITS_TEST_LABELS, name("t10k-labels-idx1-ubyte.gz")),
    ];
    let raw: Vec<Result<Vec<u8>, DataError>> = parts
        .par_iter()
        .map(|(bytes, name)| decompress(bytes.to_vec(), name))
        .collect();
    let mut raw = raw.into_iter();
    let mut next = || raw.next().expect("four parts");
    let train = (next()?, parts[0].1.clone(), next()?, parts[1].1.clone());
    let test = (next()?, parts[2].1.clone(), next()?, parts[3].1.clone());
    assemble(train, test)
}

/// Loads `DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.
pub(crate) fn load_dir(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    if !dir.is_dir() {
        return Err(DataError::io(dir, "not a directory"));
    }
    let names = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];
    let paths = names
        .iter()
        .map(|n| find_file(dir, n))
        .collect::<Result<Vec<_>, _>>()?;
    let raw: Vec<Result<Vec<u8>, DataError>> = paths
        .par_iter()
        .map(|p| {
            let bytes = std::fs::read(p).map_err(|e| DataError::io(p, e))?;
            decompress(bytes, &p.display().to_string())
        })
        .collect();
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut raw = raw.into_iter();
    let mut next = || raw.next().expect("four parts");
    let train = (next()?, shown[0].clone(), next()?, shown[1].clone());
    let test = (next()?, shown[2].clone(), next()?, shown[3].clone());
    assemble(train, test)
}

/// `name`, `name.gz`, and the `train-images.idx3-ubyte` spelling of each.
fn find_file(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let dotted = name.replacen("-idx", ".idx", 1);
    for candidate in [
        name.to_string(),
        format!("{name}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ] {
        let p = dir.join(&candidate);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(DataError::IdxMissingFile {
        dir: dir.display().to_string(),
        name: name.to_string(),
    })
}

/// Gunzips `bytes` if they start with the gzip magic; returns them unchanged otherwise.
fn decompress(bytes: Vec<u8>, name: &str) -> Result<Vec<u8>, DataError> {
    if bytes.len() < 2 || bytes[0] != 0x1f || bytes[1] != 0x8b {
        return Ok(bytes);
    }
    // The gzip trailer's ISIZE (uncompressed size mod 2^32) is a good capacity hint.
    let hint = if bytes.len() >= 18 {
        let t = &bytes[bytes.len() - 4..];
        u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize
    } else {
        0
    };
    let mut out = Vec::with_capacity(hint.min(1 << 31));
    MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .map_err(|e| DataError::Gzip {
            path: name.to_string(),
            message: e.to_string(),
        })?;
    Ok(out)
}

/// Parses and validates an IDX header; returns the dimensions and the data offset.
fn parse_header(
    bytes: &[u8],
    name: &str,
    what: &'static str,
    magic: u32,
) -> Result<(Vec<usize>, usize), DataError> {
    if bytes.len() < 4 {
        return Err(DataError::IdxHeader {
            path: name.to_string(),
            message: format!(
                "file is only {} bytes, too short for the 4-byte magic number; the file is damaged",
                bytes.len()
            ),
        });
    }
    let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if found != magic {
        return Err(DataError::IdxMagic {
            path: name.to_string(),
            what,
            found,
            expected: magic,
        });
    }
    let ndims = (magic & 0xff) as usize;
    let offset = 4 + 4 * ndims;
    if bytes.len() < offset {
        return Err(DataError::IdxHeader {
            path: name.to_string(),
            message: format!(
                "file is {} bytes, too short for its {ndims} dimension sizes; the file is damaged",
                bytes.len()
            ),
        });
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| {
            let b = &bytes[4 + 4 * d..8 + 4 * d];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let expected = offset as u64 + dims.iter().map(|&d| d as u64).product::<u64>();
    let actual = bytes.len() as u64;
    if actual != expected {
        return Err(DataError::IdxLength {
            path: name.to_string(),
            expected,
            actual,
            problem: if actual < expected {
                "truncated"
            } else {
                "trailing bytes"
            },
        });
    }
    Ok((dims, offset))
}

/// Images: returns `(count, rows, cols, pixels)`.
fn parse_images(bytes: &[u8], name: &str) -> Result<(usize, usize, usize, usize), DataError> {
    let (dims, offset) = parse_header(bytes, name, "images", IMAGES_MAGIC)?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    if n > 0 && (rows == 0 || cols == 0) {
        return Err(DataError::IdxHeader {
            path: name.to_string(),
            message: format!("images are {rows}x{cols}; both sides must be at least 1"),
        });
    }
    Ok((n, rows, cols, offset))
}

/// (images bytes, images name, labels bytes, labels name)
type Part = (Vec<u8>, String, Vec<u8>, String);
/// (pixels, labels, shape)
type Converted = (Vec<f32>, Vec<u32>, [usize; 3]);

/// Validates one images/labels pair and converts it.
fn convert(part: &Part) -> Result<Converted, DataError> {
    let (images, images_name, labels, labels_name) = part;
    let (n, rows, cols, offset) = parse_images(images, images_name)?;
    let (ldims, loffset) = parse_header(labels, labels_name, "labels", LABELS_MAGIC)?;
    if ldims[0] != n {
        return Err(DataError::IdxCountMismatch {
            images: images_name.clone(),
            labels: labels_name.clone(),
            n_images: n,
            n_labels: ldims[0],
        });
    }
    if n == 0 {
        return Err(DataError::Empty {
            path: images_name.clone(),
            message: "the header says 0 images; use a file with examples".to_string(),
        });
    }
    let mut lut = [0f32; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = i as f32 * PIXEL_SCALE;
    }
    let pixels = &images[offset..];
    let mut x = vec![0f32; pixels.len()];
    x.par_chunks_mut(1 << 16)
        .zip(pixels.par_chunks(1 << 16))
        .for_each(|(out, inp)| {
            for (o, &p) in out.iter_mut().zip(inp) {
                *o = lut[p as usize];
            }
        });
    let y = labels[loffset..].iter().map(|&l| l as u32).collect();
    Ok((x, y, [rows, cols, 1]))
}

/// Builds the train and test sets; checks that they have the same image size.
fn assemble(train: Part, test: Part) -> Result<(Dataset, Dataset), DataError> {
    let (a, b) = rayon::join(|| convert(&train), || convert(&test));
    let (xa, ya, sa) = a?;
    let (xb, yb, sb) = b?;
    if sa != sb {
        return Err(DataError::Incompatible {
            message: format!(
                "{} holds {}x{} images but {} holds {}x{}; use train and test files of the same set",
                train.1, sa[0], sa[1], test.1, sb[0], sb[1]
            ),
        });
    }
    let num_classes = ya
        .iter()
        .chain(&yb)
        .map(|&l| l as usize + 1)
        .max()
        .unwrap_or(0);
    Ok((
        Dataset {
            x: xa,
            y: ya,
            shape: sa.to_vec(),
            num_classes,
        },
        Dataset {
            x: xb,
            y: yb,
            shape: sb.to_vec(),
            num_classes,
        },
    ))
}
