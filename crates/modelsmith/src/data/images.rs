//! `images:DIR`: one subfolder per class with PNG/JPEG files, or `DIR/train` and `DIR/test`
//! each laid out that way.

use super::preprocess::decode_image;
use super::{split_indices, DataError, Dataset, LoadOptions, Preprocessing};
use image::{ColorType, DynamicImage};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

type Loaded = (Dataset, Dataset, Vec<String>, Preprocessing);
/// Image files with their class index.
type Files = Vec<(PathBuf, u32)>;

pub(crate) fn load_folder(dir: &Path, opts: &LoadOptions) -> Result<Loaded, DataError> {
    if !dir.is_dir() {
        return Err(DataError::io(dir, "not a directory"));
    }
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    let split_layout = train_dir.is_dir() && test_dir.is_dir();

    let (class_names, train_files, test_files) = if split_layout {
        let (names, train_files) = scan_classes(&train_dir, None)?;
        let (_, test_files) = scan_classes(&test_dir, Some(&names))?;
        if test_files.is_empty() {
            return Err(DataError::ImagesLayout {
                dir: test_dir.display().to_string(),
                message: "no PNG/JPEG files in the test class folders".to_string(),
            });
        }
        (names, train_files, Some(test_files))
    } else {
        let (names, files) = scan_classes(dir, None)?;
        (names, files, None)
    };

    // Decode everything once (in parallel), then pick the common size and color.
    let decode_all = |files: &[(PathBuf, u32)]| -> Result<Vec<DynamicImage>, DataError> {
        files.par_iter().map(|(p, _)| decode_image(p)).collect()
    };
    let train_images = decode_all(&train_files)?;
    let test_images = match &test_files {
        Some(f) => decode_all(f)?,
        None => Vec::new(),
    };
    let all = || train_images.iter().chain(&test_images);
    let grayscale = all().all(|img| {
        matches!(
            img.color(),
            ColorType::L8 | ColorType::La8 | ColorType::L16 | ColorType::La16
        )
    });
    let mut size_counts: HashMap<(u32, u32), usize> = HashMap::new();
    let mut order: Vec<(u32, u32)> = Vec::new();
    for img in all() {
        let s = (img.width(), img.height());
        let n = size_counts.entry(s).or_default();
        if *n == 0 {
            order.push(s);
        }
        *n += 1;
    }
    let mut best = order[0];
    for s in &order {
        if size_counts[s] > size_counts[&best] {
            best = *s;
        }
    }
    if order.len() > 1 {
        tracing::info!(
            dir = %dir.display(),
            "images have {} different sizes; resizing all to {}x{} (the most common)",
            order.len(),
            best.0,
            best.1
        );
    }
    let preprocessing = Preprocessing::Image {
        height: best.1 as usize,
        width: best.0 as usize,
        channels: if grayscale { 1 } else { 3 },
        scale: super::idx::PIXEL_SCALE,
    };
    let shape = preprocessing.input_shape();
    let num_classes = class_names.len();
    let to_dataset = |images: &[DynamicImage], files: &[(PathBuf, u32)]| {
        let inputs: Vec<Vec<f32>> = images
            .par_iter()
            .map(|img| preprocessing.image_to_input(img))
            .collect();
        Dataset {
            x: inputs.concat(),
            y: files.iter().map(|f| f.1).collect(),
            values: Vec::new(),
            shape: shape.clone(),
            num_classes,
        }
    };
    let train = to_dataset(&train_images, &train_files);
    let (train, test) = match &test_files {
        Some(test_files) => (train, to_dataset(&test_images, test_files)),
        None => {
            let (rest, held) = split_indices(&train.y, opts.test_fraction, opts.seed);
            (train.subset(&rest), train.subset(&held))
        }
    };
    Ok((train, test, class_names, preprocessing))
}

/// A user's own image folder scored with a trained model's preprocessing: `DIR/test` if there is
/// one, else `DIR`, one subfolder per class; every folder must be one of the model's classes.
pub(crate) fn held_out_folder(
    dir: &Path,
    preprocessing: &Preprocessing,
    class_names: &[String],
) -> Result<Dataset, DataError> {
    if !matches!(preprocessing, Preprocessing::Image { .. }) {
        return Err(DataError::Incompatible {
            message: format!(
                "{}: the model was trained on a table, not images; give it a CSV file",
                dir.display()
            ),
        });
    }
    if !dir.is_dir() {
        return Err(DataError::io(dir, "not a directory"));
    }
    let test_dir = dir.join("test");
    let dir = if test_dir.is_dir() {
        test_dir
    } else {
        dir.to_path_buf()
    };
    let (_, files) = scan_classes(&dir, Some(class_names))?;
    let inputs: Vec<Vec<f32>> = files
        .par_iter()
        .map(|(p, _)| decode_image(p).map(|img| preprocessing.image_to_input(&img)))
        .collect::<Result<_, _>>()?;
    Ok(Dataset {
        x: inputs.concat(),
        y: files.iter().map(|f| f.1).collect(),
        values: Vec::new(),
        shape: preprocessing.input_shape(),
        num_classes: class_names.len(),
    })
}

fn is_image_file(p: &Path) -> bool {
    let hidden = p
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'));
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    !hidden && p.is_file() && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| DataError::io(dir, e)))
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    Ok(entries)
}

/// Class subfolders of `dir` and their image files as `(path, class)`. With `known`, every
/// subfolder must be one of those classes (a test folder) and may be empty.
fn scan_classes(dir: &Path, known: Option<&[String]>) -> Result<(Vec<String>, Files), DataError> {
    let shown = dir.display().to_string();
    let class_dirs: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    if class_dirs.is_empty() {
        return Err(DataError::ImagesLayout {
            dir: shown,
            message: "no class subfolders found".to_string(),
        });
    }
    let names: Vec<String> = class_dirs
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut files = Vec::new();
    for (i, (class_dir, name)) in class_dirs.iter().zip(&names).enumerate() {
        let class = match known {
            Some(known) => match known.iter().position(|k| k == name) {
                Some(i) => i as u32,
                None => {
                    return Err(DataError::ImagesLayout {
                        dir: shown,
                        message: format!(
                            "class folder `{name}` is not among the train classes ({})",
                            known.join(", ")
                        ),
                    })
                }
            },
            None => i as u32,
        };
        let images: Vec<PathBuf> = sorted_entries(class_dir)?
            .into_iter()
            .filter(|p| is_image_file(p))
            .collect();
        if images.is_empty() && known.is_none() {
            return Err(DataError::ImagesLayout {
                dir: class_dir.display().to_string(),
                message: "class folder has no .png/.jpg/.jpeg files".to_string(),
            });
        }
        files.extend(images.into_iter().map(|p| (p, class)));
    }
    Ok((names, files))
}
