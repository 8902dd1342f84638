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
    let [(ti, tin), (tl, tln), (si, sin), (sl, sln)] = parts;
    let train = (ti.to_vec(), tin, tl.to_vec(), tln);
    let test = (si.to_vec(), sin, sl.to_vec(), sln);
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
    let raw = paths
        .par_iter()
        .map(|p| std::fs::read(p).map_err(|e| DataError::io(p, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut raw = raw.into_iter();
    let mut next = || raw.next().expect("four parts");
    let train = (next(), shown[0].clone(), next(), shown[1].clone());
    let test = (next(), shown[2].clone(), next(), shown[3].clone());
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
    if !is_gzip(&bytes) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(isize_hint(&bytes));
    // No header describes more than this, so inflating further only feeds a gzip bomb; the
    // length check then reports the excess as trailing bytes.
    let limit = MAX_IDX_VALUES + 4 + 4 * 255 + 1;
    MultiGzDecoder::new(&bytes[..])
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| DataError::Gzip {
            path: name.to_string(),
            message: e.to_string(),
        })?;
    Ok(out)
}

/// Gzip is detected by content (magic 1f 8b), not by file name.
fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// The gzip trailer's ISIZE (uncompressed size mod 2^32): a capacity hint. The trailer is the
/// file's word, so it is capped by what the compressed bytes can possibly inflate to (deflate
/// expands at most 1032:1) and by 1 GiB: a forged trailer cannot reserve memory the data won't
/// fill.
fn isize_hint(bytes: &[u8]) -> usize {
    if bytes.len() < 18 {
        return 0;
    }
    let t = &bytes[bytes.len() - 4..];
    let claimed = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize;
    claimed.min(bytes.len().saturating_mul(1032)).min(1 << 30)
}

/// Parses and validates a whole IDX file's header and length; returns the dimensions and the
/// data offset.
fn parse_header(
    bytes: &[u8],
    name: &str,
    what: &'static str,
    magic: u32,
) -> Result<(Vec<usize>, usize), DataError> {
    let dims = parse_dims(bytes, name, what, magic)?;
    let offset = 4 + 4 * dims.len();
    let expected = offset as u64 + element_count(&dims, name)?;
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

/// Checks the magic number and reads the dimensions from the start of an IDX file.
fn parse_dims(
    bytes: &[u8],
    name: &str,
    what: &'static str,
    magic: u32,
) -> Result<Vec<usize>, DataError> {
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
    element_count(&dims, name)?;
    Ok(dims)
}

/// Most values one IDX file may hold (8 GiB once converted to `f32`): a header may claim more
/// than any file holds, and a gzip file can inflate to any size, so memory is bounded up front.
pub(crate) const MAX_IDX_VALUES: u64 = 1 << 31;

/// The number of values the dimensions describe, checked: a product past 2^64 or past
/// [`MAX_IDX_VALUES`] is a damaged or hostile header, not a reason to allocate.
fn element_count(dims: &[usize], name: &str) -> Result<u64, DataError> {
    crate::size::checked_product(dims)
        .filter(|&n| n <= MAX_IDX_VALUES)
        .ok_or_else(|| DataError::IdxHeader {
            path: name.to_string(),
            message: format!(
                "the header's dimensions {dims:?} describe more than {MAX_IDX_VALUES} values; the file is damaged"
            ),
        })
}

/// Images: returns `(count, rows, cols, data offset)`.
fn parse_images(bytes: &[u8], name: &str) -> Result<(usize, usize, usize, usize), DataError> {
    let (dims, offset) = parse_header(bytes, name, "images", IMAGES_MAGIC)?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    check_sides(n, rows, cols, name)?;
    Ok((n, rows, cols, offset))
}

fn check_sides(n: usize, rows: usize, cols: usize, name: &str) -> Result<(), DataError> {
    if n > 0 && (rows == 0 || cols == 0) {
        return Err(DataError::IdxHeader {
            path: name.to_string(),
            message: format!("images are {rows}x{cols}; both sides must be at least 1"),
        });
    }
    Ok(())
}

/// (images bytes, images name, labels bytes, labels name)
type Part = (Vec<u8>, String, Vec<u8>, String);
/// (pixels, labels, shape)
type Converted = (Vec<f32>, Vec<u32>, [usize; 3]);

/// Validates one images/labels pair and converts it.
fn convert(part: Part) -> Result<Converted, DataError> {
    let (images, images_name, labels, labels_name) = part;
    let labels = decompress(labels, &labels_name)?;
    let (ldims, loffset) = parse_header(&labels, &labels_name, "labels", LABELS_MAGIC)?;
    let (x, n, rows, cols) = decode_images(images, &images_name)?;
    if ldims[0] != n {
        return Err(DataError::IdxCountMismatch {
            images: images_name,
            labels: labels_name,
            n_images: n,
            n_labels: ldims[0],
        });
    }
    if n == 0 {
        return Err(DataError::Empty {
            path: images_name,
            message: "the header says 0 images; use a file with examples".to_string(),
        });
    }
    let y = labels[loffset..].iter().map(|&l| l as u32).collect();
    Ok((x, y, [rows, cols, 1]))
}

/// Pixel value → model input, for all 256 values.
fn pixel_lut() -> [f32; 256] {
    let mut lut = [0f32; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = i as f32 * PIXEL_SCALE;
    }
    lut
}

/// Images file (raw or gzip) → `(pixels as f32, count, rows, cols)`, validated.
///
/// A gzip file is decompressed on its own thread and converted chunk by chunk as it arrives, so
/// decompression and conversion (mostly page faults of the 4x larger output) overlap.
fn decode_images(bytes: Vec<u8>, name: &str) -> Result<(Vec<f32>, usize, usize, usize), DataError> {
    let lut = pixel_lut();
    if !is_gzip(&bytes) {
        let (n, rows, cols, offset) = parse_images(&bytes, name)?;
        let x = bytes[offset..].iter().map(|&p| lut[p as usize]).collect();
        return Ok((x, n, rows, cols));
    }
    const CHUNK: usize = 1 << 20;
    let hint = isize_hint(&bytes);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        let producer = scope.spawn(move || -> Result<(), String> {
            let mut dec = MultiGzDecoder::new(&bytes[..]);
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    match dec.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(k) => filled += k,
                        Err(e) => return Err(e.to_string()),
                    }
                }
                buf.truncate(filled);
                let last = filled < CHUNK;
                if (filled > 0 && tx.send(buf).is_err()) || last {
                    return Ok(());
                }
            }
        });
        // Consume: header first, then pixels. Returns the total decompressed length.
        let consumed = (move || -> Result<_, DataError> {
            let mut head: Vec<u8> = Vec::with_capacity(16);
            let mut header: Option<(usize, usize, usize)> = None;
            let mut expected = u64::MAX;
            let mut x: Vec<f32> = Vec::new();
            let mut total = 0u64;
            for chunk in rx {
                total += chunk.len() as u64;
                if total > expected {
                    break; // trailing bytes: reported below, without inflating the rest
                }
                let mut data = &chunk[..];
                if header.is_none() {
                    let take = (16 - head.len()).min(data.len());
                    head.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if head.len() < 16 {
                        continue;
                    }
                    let dims = parse_dims(&head, name, "images", IMAGES_MAGIC)?;
                    check_sides(dims[0], dims[1], dims[2], name)?;
                    let len = element_count(&dims, name)?;
                    expected = 16 + len;
                    x.reserve_exact((len as usize).min(hint));
                    header = Some((dims[0], dims[1], dims[2]));
                }
                x.extend(data.iter().map(|&p| lut[p as usize]));
            }
            Ok((header, head, x, total))
        })();
        let produced = producer.join().expect("gzip thread panicked");
        if let Err(message) = produced {
            return Err(DataError::Gzip {
                path: name.to_string(),
                message,
            });
        }
        let (header, head, x, total) = consumed?;
        let Some((n, rows, cols)) = header else {
            // Shorter than a full header: report it as the raw parser would.
            parse_images(&head, name)?;
            unreachable!("a complete header was not found, so parsing must fail");
        };
        let expected = 16 + (n * rows * cols) as u64; // bounded by element_count
        if total != expected {
            return Err(DataError::IdxLength {
                path: name.to_string(),
                expected,
                actual: total,
                problem: if total < expected {
                    "truncated"
                } else {
                    "trailing bytes"
                },
            });
        }
        Ok((x, n, rows, cols))
    })
}

/// Builds the train and test sets; checks that they have the same image size.
fn assemble(train: Part, test: Part) -> Result<(Dataset, Dataset), DataError> {
    let (train_name, test_name) = (train.1.clone(), test.1.clone());
    let (a, b) = rayon::join(|| convert(train), || convert(test));
    let (xa, ya, sa) = a?;
    let (xb, yb, sb) = b?;
    if sa != sb {
        return Err(DataError::Incompatible {
            message: format!(
                "{} holds {}x{} images but {} holds {}x{}; use train and test files of the same set",
                train_name, sa[0], sa[1], test_name, sb[0], sb[1]
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
            values: Vec::new(),
            shape: sa.to_vec(),
            num_classes,
        },
        Dataset {
            x: xb,
            y: yb,
            values: Vec::new(),
            shape: sb.to_vec(),
            num_classes,
        },
    ))
}
