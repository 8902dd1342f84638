//! JSON numbers straight into `f32` buffers, without building a `serde_json::Value` tree: a
//! 28x28 image is 784 numbers per request, and this is the server's hottest parsing path.
//!
//! [`FlatNumbers`] accepts a flat or arbitrarily nested array of numbers (KServe's `data`);
//! [`Examples`] is `/predict`'s body: one example as an array of numbers, or a batch as an
//! array of arrays (each one example, flattened).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, SeqAccess, Visitor};
use serde::Deserialize;

/// Every number of a (possibly nested) JSON array, in row-major order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlatNumbers(pub Vec<f32>);

impl<'de> Deserialize<'de> for FlatNumbers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        deserializer.deserialize_seq(AppendArray(&mut out))?;
        Ok(FlatNumbers(out))
    }
}

/// `/predict`'s JSON body: the examples and whether the client sent a batch (an array of arrays)
/// or one example (an array of numbers).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Examples {
    pub examples: Vec<Vec<f32>>,
    pub batch: bool,
}

impl<'de> Deserialize<'de> for Examples {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ExamplesVisitor)
    }
}

/// A finite `f32` from a JSON number, or an error naming the value.
fn to_f32<E: serde::de::Error>(v: f64) -> Result<f32, E> {
    let x = v as f32;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(E::custom(format!("{v} is outside the FP32 range")))
    }
}

const NOT_A_NUMBER: &str = "a number or an array of numbers";

/// Appends the numbers of one JSON array (recursing into nested arrays) to a buffer.
struct AppendArray<'a>(&'a mut Vec<f32>);

impl<'de> Visitor<'de> for AppendArray<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of numbers (flat or nested)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.0.reserve(n);
        }
        while seq.next_element_seed(AppendValue(self.0))?.is_some() {}
        Ok(())
    }
}

/// Appends one array element: a number, or a nested array's numbers.
struct AppendValue<'a>(&'a mut Vec<f32>);

impl<'de> DeserializeSeed<'de> for AppendValue<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AppendValue<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(NOT_A_NUMBER)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(to_f32(v)?);
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.visit_f64(v as f64)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.visit_f64(v as f64)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        AppendArray(self.0).visit_seq(seq)
    }
}

struct ExamplesVisitor;

impl<'de> Visitor<'de> for ExamplesVisitor {
    type Value = Examples;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of numbers (one example) or an array of arrays (a batch)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Examples, A::Error> {
        let mut single = Vec::new();
        let mut batch = Vec::new();
        while let Some(element) = seq.next_element_seed(ExampleElement)? {
            match element {
                Element::Number(x) => single.push(x),
                Element::Example(values) => batch.push(values),
            }
            if !single.is_empty() && !batch.is_empty() {
                return Err(A::Error::custom(
                    "mixes numbers and arrays: send one example as an array of numbers, \
                     or a batch as an array of arrays",
                ));
            }
        }
        Ok(if batch.is_empty() {
            Examples {
                examples: if single.is_empty() {
                    Vec::new()
                } else {
                    vec![single]
                },
                batch: false,
            }
        } else {
            Examples {
                examples: batch,
                batch: true,
            }
        })
    }
}

/// A top-level element of `/predict`'s array: a number of a single example, or a whole example.
enum Element {
    Number(f32),
    Example(Vec<f32>),
}

struct ExampleElement;

impl<'de> DeserializeSeed<'de> for ExampleElement {
    type Value = Element;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Element, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ExampleElement {
    type Value = Element;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(NOT_A_NUMBER)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Element, E> {
        Ok(Element::Number(to_f32(v)?))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Element, E> {
        self.visit_f64(v as f64)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Element, E> {
        self.visit_f64(v as f64)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element, A::Error> {
        let mut values = Vec::new();
        AppendArray(&mut values).visit_seq(seq)?;
        Ok(Element::Example(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_and_nested_arrays_flatten_in_row_major_order() {
        let flat: FlatNumbers = serde_json::from_str("[1, 2.5, -3]").unwrap();
        assert_eq!(flat.0, vec![1.0, 2.5, -3.0]);
        let nested: FlatNumbers = serde_json::from_str("[[[1],[2]],[[3],[4e0]]]").unwrap();
        assert_eq!(nested.0, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn non_numbers_and_out_of_range_values_are_refused() {
        for bad in [
            "[1, \"2\"]",
            "[true]",
            "[null]",
            "[[1], {}]",
            "{\"a\": 1}",
            "[1e39]",
        ] {
            assert!(serde_json::from_str::<FlatNumbers>(bad).is_err(), "{bad}");
        }
        let err = serde_json::from_str::<FlatNumbers>("[1e39]").unwrap_err();
        assert!(err.to_string().contains("FP32 range"), "{err}");
    }

    #[test]
    fn examples_are_one_array_or_an_array_of_arrays() {
        let one: Examples = serde_json::from_str("[0, 0.5, 1]").unwrap();
        assert_eq!(one.examples, vec![vec![0.0, 0.5, 1.0]]);
        assert!(!one.batch);
        let two: Examples = serde_json::from_str("[[0, 1], [[2], [3]]]").unwrap();
        assert_eq!(two.examples, vec![vec![0.0, 1.0], vec![2.0, 3.0]]);
        assert!(two.batch);
        let err = serde_json::from_str::<Examples>("[1, [2]]").unwrap_err();
        assert!(
            err.to_string().contains("mixes numbers and arrays"),
            "{err}"
        );
        assert!(serde_json::from_str::<Examples>("[]")
            .unwrap()
            .examples
            .is_empty());
        assert!(serde_json::from_str::<Examples>("7").is_err());
    }
}
