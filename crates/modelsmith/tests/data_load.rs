//! Loading data: bundled digits, Fashion-MNIST (where installed), IDX folders and their bad
//! inputs, CSV tables, image folders, preprocessing round trips, splits and batching.

use modelsmith::data::{
    load, split_indices, ColumnKind, DataError, DataInfo, Dataset, LoadOptions, MissingPolicy,
    Preprocessing,
};
use std::io::Write;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- helpers

fn idx_images(n: u32, rows: u32, cols: u32, pixel: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [n, rows, cols] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend((0..(n * rows * cols) as usize).map(pixel));
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A valid small IDX folder: 6 train / 3 test 4x3 images, labels 0..=2.
/// `gzip` selects `.gz` files (written compressed) or raw ones.
fn write_idx_dir(dir: &Path, gzip: bool) {
    let files = [
        (
            "train-images-idx3-ubyte",
            idx_images(6, 4, 3, |i| (i * 7 % 256) as u8),
        ),
        ("train-labels-idx1-ubyte", idx_labels(&[0, 1, 2, 0, 1, 2])),
        (
            "t10k-images-idx3-ubyte",
            idx_images(3, 4, 3, |i| (255 - i % 256) as u8),
        ),
        ("t10k-labels-idx1-ubyte", idx_labels(&[2, 1, 0])),
    ];
    for (name, bytes) in files {
        if gzip {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

fn load_idx(dir: &Path) -> Result<modelsmith::data::LoadedData, DataError> {
    load(&format!("idx:{}", dir.display()), &LoadOptions::default())
}

fn csv_opts(target: &str) -> LoadOptions {
    LoadOptions {
        target: Some(target.to_string()),
        test_fraction: 0.25,
        seed: 7,
        ..LoadOptions::default()
    }
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

// ---------------------------------------------------------------- digits, fashion-mnist

#[test]
fn digits_load_from_the_embedded_files() {
    let d = load("digits", &LoadOptions::default()).unwrap();
    assert_eq!(d.train.len(), 8000);
    assert_eq!(d.test.len(), 2000);
    for set in [&d.train, &d.test] {
        assert_eq!(set.shape, vec![28, 28, 1]);
        assert_eq!(set.num_classes, 10);
        assert_eq!(set.x.len(), set.len() * 784);
        assert!(set.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(set.y.iter().all(|&y| y < 10));
    }
    assert_eq!(d.test.class_counts(), vec![200; 10]);
    assert!(d.train.x.contains(&1.0), "white pixels scale to 1");
    assert_eq!(d.info.class_names().len(), 10);
    assert_eq!(d.info.class_names()[3], "3");
    assert_eq!(
        d.info.preprocessing,
        Preprocessing::Image {
            height: 28,
            width: 28,
            channels: 1,
            scale: 1.0 / 255.0
        }
    );
}

#[test]
fn fashion_mnist_loads_where_installed() {
    let opts = LoadOptions::default();
    if !opts.fashion_mnist_dir.is_dir() {
        eprintln!("skipped: Fashion-MNIST is not installed");
        return;
    }
    let d = load("fashion-mnist", &opts).unwrap();
    assert_eq!((d.train.len(), d.test.len()), (60_000, 10_000));
    assert_eq!(d.train.shape, vec![28, 28, 1]);
    assert_eq!(d.train.num_classes, 10);
    assert_eq!(d.test.class_counts(), vec![1000; 10]);
    assert_eq!(d.info.class_names()[9], "Ankle boot");
}

#[test]
fn fashion_mnist_missing_names_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        fashion_mnist_dir: dir.path().join("nowhere"),
        ..LoadOptions::default()
    };
    let e = load("fashion-mnist", &opts).unwrap_err();
    assert!(matches!(e, DataError::FashionMnistMissing { .. }));
    let msg = e.to_string();
    assert!(msg.contains("nowhere"), "{msg}");
    assert!(
        msg.contains("apt-get install -y dataset-fashion-mnist"),
        "{msg}"
    );
}

#[test]
fn unknown_spec_lists_the_forms() {
    let e = load("mnist-ish", &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::UnknownSpec { .. }));
    assert!(e.to_string().contains("csv:FILE"));
}

// ---------------------------------------------------------------- IDX

#[test]
fn idx_dir_loads_raw_and_gz_alike() {
    let raw = tempfile::tempdir().unwrap();
    let gzd = tempfile::tempdir().unwrap();
    write_idx_dir(raw.path(), false);
    write_idx_dir(gzd.path(), true);
    let a = load_idx(raw.path()).unwrap();
    let b = load_idx(gzd.path()).unwrap();
    assert_eq!(a.train, b.train);
    assert_eq!(a.test, b.test);
    assert_eq!(a.train.shape, vec![4, 3, 1]);
    assert_eq!(a.train.num_classes, 3);
    assert_eq!(a.train.y, vec![0, 1, 2, 0, 1, 2]);
    assert_eq!(a.train.x[1], 7.0 * (1.0 / 255.0));
    assert_eq!(a.test.x[0], 1.0);
    match &a.info.preprocessing {
        Preprocessing::Image { height, width, .. } => assert_eq!((*height, *width), (4, 3)),
        p => panic!("{p:?}"),
    }
}

/// Writes a valid folder, then replaces one file; returns the error.
fn idx_error(file: &str, bytes: Vec<u8>) -> DataError {
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), false);
    std::fs::write(dir.path().join(file), bytes).unwrap();
    load_idx(dir.path()).unwrap_err()
}

#[test]
fn idx_wrong_magic() {
    let mut bytes = idx_labels(&[0, 1, 2, 0, 1, 2]);
    bytes[3] = 3; // the images magic 0x00000803 in a labels file
    let e = idx_error("train-labels-idx1-ubyte", bytes);
    assert!(matches!(e, DataError::IdxMagic { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("train-labels-idx1-ubyte"), "{msg}");
    assert!(msg.contains("0x00000801"), "{msg}");
}

#[test]
fn idx_truncated_file() {
    let mut bytes = idx_images(6, 4, 3, |_| 1);
    bytes.truncate(bytes.len() - 5);
    let e = idx_error("train-images-idx3-ubyte", bytes);
    assert!(matches!(e, DataError::IdxLength { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn idx_header_cut_short() {
    let e = idx_error("t10k-images-idx3-ubyte", vec![0, 0, 8, 3, 0, 0]);
    assert!(matches!(e, DataError::IdxHeader { .. }), "{e:?}");
    assert!(e.to_string().contains("t10k-images-idx3-ubyte"));
}

#[test]
fn idx_trailing_bytes() {
    let mut bytes = idx_labels(&[2, 1, 0]);
    bytes.push(0);
    let e = idx_error("t10k-labels-idx1-ubyte", bytes);
    assert!(
        matches!(e, DataError::IdxLength { .. }) && e.to_string().contains("trailing"),
        "{e}"
    );
}

#[test]
fn idx_dimensions_whose_product_overflows_are_a_damaged_header() {
    // [4, 2^31, 2^31] multiplies to 2^64: 16 bytes that once panicked with "capacity overflow".
    let mut header = vec![0, 0, 8, 3];
    for d in [4u32, 1 << 31, 1 << 31] {
        header.extend_from_slice(&d.to_be_bytes());
    }
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_idx_dir(dir.path(), gzip);
        let (name, bytes) = if gzip {
            ("train-images-idx3-ubyte.gz", gz(&header))
        } else {
            ("train-images-idx3-ubyte", header.clone())
        };
        std::fs::write(dir.path().join(name), bytes).unwrap();
        let e = load_idx(dir.path()).unwrap_err();
        assert!(matches!(e, DataError::IdxHeader { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(name) && msg.contains("damaged"), "{msg}");
    }
    // A plausible product that is still past the bound: refused before anything is allocated.
    let e = idx_error("t10k-images-idx3-ubyte", {
        let mut h = vec![0, 0, 8, 3];
        for d in [1u32 << 20, 1 << 12, 1 << 12] {
            h.extend_from_slice(&d.to_be_bytes());
        }
        h
    });
    assert!(matches!(e, DataError::IdxHeader { .. }), "{e:?}");
}

#[test]
fn idx_counts_disagree() {
    let e = idx_error("t10k-labels-idx1-ubyte", idx_labels(&[2, 1]));
    assert!(matches!(e, DataError::IdxCountMismatch { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("t10k-images-idx3-ubyte"), "{msg}");
    assert!(msg.contains("t10k-labels-idx1-ubyte"), "{msg}");
    assert!(
        msg.contains("3 images") && msg.contains("2 labels"),
        "{msg}"
    );
}

#[test]
fn idx_corrupt_gzip() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), true);
    let p = dir.path().join("train-images-idx3-ubyte.gz");
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    for b in &mut bytes[12..n - 8] {
        *b ^= 0x5a;
    }
    std::fs::write(&p, bytes).unwrap();
    let e = load_idx(dir.path()).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
    assert!(e.to_string().contains("train-images-idx3-ubyte.gz"), "{e}");
}

#[test]
fn idx_truncated_gzip() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), true);
    let p = dir.path().join("train-labels-idx1-ubyte.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_idx(dir.path()).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
    assert!(e.to_string().contains("train-labels-idx1-ubyte.gz"), "{e}");
}

#[test]
fn idx_empty_set() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), false);
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        idx_images(0, 4, 3, |_| 0),
    )
    .unwrap();
    std::fs::write(dir.path().join("train-labels-idx1-ubyte"), idx_labels(&[])).unwrap();
    let e = load_idx(dir.path()).unwrap_err();
    assert!(matches!(e, DataError::Empty { .. }), "{e:?}");
    assert!(e.to_string().contains("train-images-idx3-ubyte"), "{e}");
}

#[test]
fn idx_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_dir(dir.path(), false);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let e = load_idx(dir.path()).unwrap_err();
    assert!(matches!(e, DataError::IdxMissingFile { .. }), "{e:?}");
    assert!(e.to_string().contains("t10k-labels-idx1-ubyte"), "{e}");
}

// ---------------------------------------------------------------- CSV

const TABLE: &str = "\
size,color,weight,kind
1.0,red,10,apple
2.0,green,20,pear
3.0,red,30,apple
4.0,blue,40,plum
5.0,green,50,pear
6.0,red,60,apple
7.0,blue,70,plum
8.0,green,80,pear
";

#[test]
fn csv_numeric_categorical_and_string_target() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "t.csv", TABLE);
    let d = load(&format!("csv:{}", p.display()), &csv_opts("kind")).unwrap();
    assert_eq!(d.info.class_names(), vec!["apple", "pear", "plum"]);
    assert_eq!(d.train.len() + d.test.len(), 8);
    assert_eq!(d.test.len(), 2);
    // size (1) + color one-hot (vocabulary seen in train) + weight (1)
    let Preprocessing::Table { target, columns } = &d.info.preprocessing else {
        panic!("not a table");
    };
    assert_eq!(target, "kind");
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["size", "color", "weight"]);
    assert!(matches!(columns[0].kind, ColumnKind::Numeric { .. }));
    assert!(matches!(columns[1].kind, ColumnKind::Categorical { .. }));
    assert_eq!(d.train.shape, d.info.preprocessing.input_shape());
    // Numeric columns are standardized on train: mean 0, std 1 there.
    let w = d.train.example_len();
    let sizes: Vec<f32> = (0..d.train.len()).map(|i| d.train.x[i * w]).collect();
    let mean = sizes.iter().sum::<f32>() / sizes.len() as f32;
    let var = sizes.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / sizes.len() as f32;
    assert!(
        mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
        "{mean} {var}"
    );
    // One-hot block sums to 1 for every train row.
    let k = columns[1].kind.width();
    for i in 0..d.train.len() {
        let s: f32 = d.train.example(i)[1..1 + k].iter().sum();
        assert_eq!(s, 1.0);
    }
}

#[test]
fn csv_integer_targets_sort_numerically() {
    let dir = tempfile::tempdir().unwrap();
    let text = "a,label\n1,10\n2,9\n3,10\n4,9\n5,100\n6,100\n";
    let p = write_file(dir.path(), "t.csv", text);
    let d = load(&format!("csv:{}", p.display()), &csv_opts("label")).unwrap();
    assert_eq!(d.info.class_names(), vec!["9", "10", "100"]);
}

#[test]
fn csv_missing_values_imputed() {
    let dir = tempfile::tempdir().unwrap();
    let text = "x,c,y\n1,a,0\nNA,b,1\n3,?,0\n5,a,1\n,a,0\n7,b,1\n9,NaN,0\n11,a,1\n";
    let p = write_file(dir.path(), "t.csv", text);
    let d = load(&format!("csv:{}", p.display()), &csv_opts("y")).unwrap();
    let all = d.train.concat(&d.test).unwrap();
    assert!(all.x.iter().all(|v| v.is_finite()));
    let Preprocessing::Table { columns, .. } = &d.info.preprocessing else {
        panic!()
    };
    match &columns[0].kind {
        ColumnKind::Numeric { mean, impute, .. } => assert_eq!(mean, impute),
        k => panic!("{k:?}"),
    }
    match &columns[1].kind {
        ColumnKind::Categorical { vocabulary, impute } => {
            assert!(!vocabulary.iter().any(|v| v == "?" || v == "NaN"));
            assert_eq!(impute, "a");
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn csv_missing_values_rejected_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let text = "x,c,y\n1,a,0\n2,b,1\n3,,0\n4,a,1\n";
    let p = write_file(dir.path(), "t.csv", text);
    let opts = LoadOptions {
        missing: MissingPolicy::Reject,
        ..csv_opts("y")
    };
    let e = load(&format!("csv:{}", p.display()), &opts).unwrap_err();
    assert!(
        matches!(e, DataError::CsvMissingValue { line: 4, .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("t.csv:4") && msg.contains("`c`"), "{msg}");
}

#[test]
fn csv_missing_target_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "t.csv", "x,y\n1,a\n2,\n3,b\n");
    let e = load(&format!("csv:{}", p.display()), &csv_opts("y")).unwrap_err();
    assert!(
        matches!(e, DataError::CsvMissingTarget { line: 3, .. }),
        "{e:?}"
    );
}

#[test]
fn csv_ragged_row_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "r.csv", "a,b,y\n1,2,0\n3,4,1\n5,0\n6,7,1\n");
    let e = load(&format!("csv:{}", p.display()), &csv_opts("y")).unwrap_err();
    assert!(matches!(e, DataError::CsvRagged { line: 4, .. }), "{e:?}");
    assert!(e.to_string().contains("r.csv:4"), "{e}");
}

#[test]
fn csv_unknown_or_absent_target_lists_columns() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "t.csv", TABLE);
    let spec = format!("csv:{}", p.display());
    let e = load(&spec, &csv_opts("species")).unwrap_err();
    assert!(matches!(e, DataError::CsvUnknownTarget { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("species") && msg.contains("size, color, weight, kind"),
        "{msg}"
    );
    let e = load(&spec, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::CsvNoTarget { .. }), "{e:?}");
    assert!(e.to_string().contains("--target"), "{e}");
}

#[test]
fn csv_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("empty.csv", ""), ("header.csv", "a,b,y\n")] {
        let p = write_file(dir.path(), name, text);
        let e = load(&format!("csv:{}", p.display()), &csv_opts("y")).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{e:?}");
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn csv_missing_file_names_it() {
    let e = load("csv:/no/such/file.csv", &csv_opts("y")).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
    assert!(e.to_string().contains("/no/such/file.csv"));
}

#[test]
fn csv_preprocessing_round_trips_and_maps_rows_like_the_loader() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "t.csv", TABLE);
    let d = load(&format!("csv:{}", p.display()), &csv_opts("kind")).unwrap();
    let json = serde_json::to_string(&d.info).unwrap();
    let info: DataInfo = serde_json::from_str(&json).unwrap();
    assert_eq!(info, d.info);
    // The same file through the saved preprocessing gives every row's loader vector.
    let rows = info.preprocessing.csv_rows_to_inputs(&p).unwrap();
    assert_eq!(rows.len(), 8);
    let all = d.train.concat(&d.test).unwrap();
    for i in 0..all.len() {
        assert!(rows.iter().any(|r| r.as_slice() == all.example(i)));
    }
    // Columns reordered, target absent, a missing value and an unseen category.
    let q = write_file(
        dir.path(),
        "new.csv",
        "weight,extra,color,size\n10,x,red,1.0\n,x,violet,2.0\n",
    );
    let rows = info.preprocessing.csv_rows_to_inputs(&q).unwrap();
    assert_eq!(rows[0], first_row(&all, &info.preprocessing));
    assert!(rows[1].iter().all(|v| v.is_finite()));
    let Preprocessing::Table { columns, .. } = &info.preprocessing else {
        panic!()
    };
    let k = columns[1].kind.width();
    assert!(
        rows[1][1..1 + k].iter().all(|&v| v == 0.0),
        "unseen → zeros"
    );
    // A prediction CSV without a needed column.
    let r = write_file(dir.path(), "bad.csv", "size,weight\n1,2\n");
    let e = info.preprocessing.csv_rows_to_inputs(&r).unwrap_err();
    assert!(matches!(e, DataError::CsvMissingColumn { .. }), "{e:?}");
    assert!(e.to_string().contains("bad.csv") && e.to_string().contains("color"));
}

/// The loader's vector for the first file row (size 1.0, red, 10): the one whose standardized
/// size matches.
fn first_row(all: &Dataset, p: &Preprocessing) -> Vec<f32> {
    let Preprocessing::Table { columns, .. } = p else {
        panic!()
    };
    let ColumnKind::Numeric { mean, std, .. } = &columns[0].kind else {
        panic!()
    };
    let want0 = ((1.0 - mean) / std) as f32;
    (0..all.len())
        .map(|i| all.example(i).to_vec())
        .find(|e| e[0] == want0)
        .unwrap()
}

// ---------------------------------------------------------------- image folders

fn write_png_gray(path: &Path, w: u32, h: u32, v: u8) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([v.wrapping_add((x + y) as u8)]))
        .save(path)
        .unwrap();
}

#[test]
fn images_folder_with_two_classes() {
    let dir = tempfile::tempdir().unwrap();
    for (class, v) in [("cat", 10u8), ("dog", 200u8)] {
        let c = dir.path().join(class);
        std::fs::create_dir(&c).unwrap();
        for i in 0..5 {
            write_png_gray(&c.join(format!("{i}.png")), 6, 4, v);
        }
        // One odd-sized image gets resized to the most common size.
        write_png_gray(&c.join("odd.png"), 12, 8, v);
        std::fs::write(c.join("notes.txt"), "ignored").unwrap();
    }
    let spec = format!("images:{}", dir.path().display());
    let opts = LoadOptions {
        test_fraction: 0.34,
        seed: 3,
        ..LoadOptions::default()
    };
    let d = load(&spec, &opts).unwrap();
    assert_eq!(d.info.class_names(), vec!["cat", "dog"]);
    assert_eq!(d.train.shape, vec![4, 6, 1]);
    assert_eq!(d.train.len() + d.test.len(), 12);
    assert_eq!(d.test.len(), 4);
    assert_eq!(d.test.class_counts(), vec![2, 2], "stratified");
    assert!(d.train.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    // Same seed, same split.
    let again = load(&spec, &opts).unwrap();
    assert_eq!(again.test, d.test);
    // Raw file → same vector as the loader (pixel (0,0) of class cat is 10/255).
    let pre = &d.info.preprocessing;
    let v = pre.load_image_file(dir.path().join("cat/0.png")).unwrap();
    assert_eq!(v.len(), 24);
    assert_eq!(v[0], 10.0 * (1.0 / 255.0));
    let all = d.train.concat(&d.test).unwrap();
    assert!((0..all.len()).any(|i| all.example(i) == v.as_slice()));
    let json = serde_json::to_string(pre).unwrap();
    let back: Preprocessing = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, pre);
}

#[test]
fn images_train_test_layout_and_rgb() {
    let dir = tempfile::tempdir().unwrap();
    for part in ["train", "test"] {
        for class in ["a", "b"] {
            let c = dir.path().join(part).join(class);
            std::fs::create_dir_all(&c).unwrap();
            for i in 0..2 {
                image::RgbImage::from_fn(3, 3, |x, _| image::Rgb([x as u8 * 50, 0, 255]))
                    .save(c.join(format!("{i}.png")))
                    .unwrap();
            }
        }
    }
    let d = load(
        &format!("images:{}", dir.path().display()),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!((d.train.len(), d.test.len()), (4, 4));
    assert_eq!(d.train.shape, vec![3, 3, 3]);
    assert_eq!(&d.train.example(0)[..3], &[0.0, 0.0, 1.0]);
}

#[test]
fn images_bad_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("images:{}", dir.path().display());
    let e = load(&spec, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::ImagesLayout { .. }), "{e:?}");
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("a/broken.png"), b"not a png").unwrap();
    let e = load(&spec, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Image { .. }), "{e:?}");
    assert!(e.to_string().contains("broken.png"), "{e}");
}

// ---------------------------------------------------------------- Dataset operations

fn toy(n: usize, classes: u32) -> Dataset {
    Dataset {
        x: (0..n * 2).map(|v| v as f32).collect(),
        y: (0..n as u32).map(|i| i % classes).collect(),
        values: Vec::new(),
        shape: vec![2],
        num_classes: classes as usize,
    }
}

#[test]
fn split_is_deterministic_stratified_and_a_partition() {
    let d = toy(100, 4);
    let (rest, held) = d.split(0.2, 11);
    assert_eq!((rest.len(), held.len()), (80, 20));
    assert_eq!(held.class_counts(), vec![5; 4]);
    assert_eq!(d.split(0.2, 11), (rest.clone(), held.clone()));
    assert_ne!(d.split(0.2, 12).1, held);
    let (r, h) = split_indices(&d.y, 0.2, 11);
    let mut all: Vec<usize> = r.iter().chain(&h).copied().collect();
    all.sort();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert_eq!(held, d.subset(&h));
    // Tiny sets keep at least one on each side.
    let (r, h) = split_indices(&[0, 1], 0.01, 0);
    assert_eq!((r.len(), h.len()), (1, 1));
    let (r, h) = split_indices(&[0, 1, 0], 0.99, 0);
    assert_eq!((r.len(), h.len()), (1, 2));
}

#[test]
fn subset_gather_concat() {
    let d = toy(5, 2);
    let s = d.subset(&[4, 0, 4]);
    assert_eq!(s.x, vec![8.0, 9.0, 0.0, 1.0, 8.0, 9.0]);
    assert_eq!(s.y, vec![0, 0, 0]);
    let mut x = vec![99.0; 100];
    let mut y = vec![7; 9];
    d.gather(&[1, 3], &mut x, &mut y);
    assert_eq!(x, vec![2.0, 3.0, 6.0, 7.0]);
    assert_eq!(y, vec![1, 1]);
    assert_eq!(d.example(2), &[4.0, 5.0]);
    let c = d.concat(&s).unwrap();
    assert_eq!(c.len(), 8);
    assert_eq!(c.example(5), &[8.0, 9.0]);
    let other = Dataset {
        shape: vec![3],
        ..Dataset::empty(vec![3], 2)
    };
    let e = d.concat(&other).unwrap_err();
    assert!(matches!(e, DataError::Incompatible { .. }));
    assert!(Dataset::empty(vec![2], 2).is_empty());
}

#[test]
fn regression_targets_follow_their_examples() {
    // Two targets per example: subset, gather_values and concat keep them with their rows.
    let d = Dataset {
        values: (0..10).map(|v| v as f32 * 0.5).collect(),
        ..toy(5, 2)
    };
    assert_eq!(d.values_per_example(), 2);
    let s = d.subset(&[4, 0]);
    assert_eq!(s.values, vec![4.0, 4.5, 0.0, 0.5]);
    let mut v = vec![9.0; 3];
    d.gather_values(&[2], &mut v);
    assert_eq!(v, vec![2.0, 2.5]);
    let c = d.concat(&s).unwrap();
    assert_eq!(c.values.len(), 14);
    assert_eq!(&c.values[10..], &[4.0, 4.5, 0.0, 0.5]);
    let mut none = vec![1.0];
    toy(3, 2).gather_values(&[0, 1], &mut none);
    assert!(none.is_empty(), "classification has no values");
}

#[test]
fn bad_test_fraction_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(dir.path(), "t.csv", TABLE);
    let opts = LoadOptions {
        test_fraction: 1.0,
        ..csv_opts("kind")
    };
    let e = load(&format!("csv:{}", p.display()), &opts).unwrap_err();
    assert!(matches!(e, DataError::InvalidOption { .. }), "{e:?}");
}

#[test]
fn folds_partition_the_examples_and_keep_each_class_share() {
    let d = toy(103, 3);
    let mut seen = vec![0usize; d.len()];
    for fold in 0..5 {
        let (rest, held) = modelsmith::data::fold_indices(&d.y, 5, fold, 9);
        assert_eq!(rest.len() + held.len(), d.len());
        assert!(held.len() == 20 || held.len() == 21, "{}", held.len());
        for &i in &held {
            seen[i] += 1;
        }
        // Every class in every fold, at its share (34-35 examples per class over 5 folds).
        let counts = d.subset(&held).class_counts();
        assert!(counts.iter().all(|&c| (6..=8).contains(&c)), "{counts:?}");
        assert_eq!(d.fold(5, fold, 9), (d.subset(&rest), d.subset(&held)));
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "each example held out exactly once"
    );
    assert_ne!(
        modelsmith::data::fold_indices(&d.y, 5, 0, 9).1,
        modelsmith::data::fold_indices(&d.y, 5, 0, 10).1
    );
}
