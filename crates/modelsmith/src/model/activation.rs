//! Activation names as written in specs: `relu`, `leaky_relu`, `leaky_relu(0.1)`, `elu`,
//! `elu(0.5)`, `gelu`, `sigmoid`, `tanh`, `linear`, and `softmax` (only on the last layer, where
//! it is folded into the cross-entropy loss: the network outputs logits).

use std::fmt;
use std::str::FromStr;

use modelsmith_engine::Activation;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ActivationSpec {
    #[default]
    Linear,
    Relu,
    LeakyRelu(f32),
    Elu(f32),
    Gelu,
    Sigmoid,
    Tanh,
    Softmax,
}

impl ActivationSpec {
    /// The engine activation; softmax maps to linear logits (the loss applies it).
    pub fn to_engine(self) -> Activation {
        match self {
            ActivationSpec::Linear | ActivationSpec::Softmax => Activation::Linear,
            ActivationSpec::Relu => Activation::Relu,
            ActivationSpec::LeakyRelu(a) => Activation::LeakyRelu(a),
            ActivationSpec::Elu(a) => Activation::Elu(a),
            ActivationSpec::Gelu => Activation::Gelu,
            ActivationSpec::Sigmoid => Activation::Sigmoid,
            ActivationSpec::Tanh => Activation::Tanh,
        }
    }
}

impl fmt::Display for ActivationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivationSpec::Linear => write!(f, "linear"),
            ActivationSpec::Relu => write!(f, "relu"),
            ActivationSpec::LeakyRelu(a) => write!(f, "leaky_relu({a})"),
            ActivationSpec::Elu(a) => write!(f, "elu({a})"),
            ActivationSpec::Gelu => write!(f, "gelu"),
            ActivationSpec::Sigmoid => write!(f, "sigmoid"),
            ActivationSpec::Tanh => write!(f, "tanh"),
            ActivationSpec::Softmax => write!(f, "softmax"),
        }
    }
}

impl FromStr for ActivationSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (name, arg) = match s.split_once('(') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix(')').ok_or_else(|| {
                    format!("activation '{s}': missing ')' (write e.g. leaky_relu(0.1))")
                })?;
                let v: f32 = inner
                    .trim()
                    .parse()
                    .map_err(|_| format!("activation '{s}': '{inner}' is not a number"))?;
                (name.trim(), Some(v))
            }
            None => (s, None),
        };
        let plain = |a: ActivationSpec| match arg {
            None => Ok(a),
            Some(_) => Err(format!("activation '{name}' takes no parameter")),
        };
        match name {
            "linear" | "none" => plain(ActivationSpec::Linear),
            "relu" => plain(ActivationSpec::Relu),
            // Keras 3 defaults: LeakyReLU negative_slope 0.3, ELU alpha 1.0.
            "leaky_relu" => Ok(ActivationSpec::LeakyRelu(arg.unwrap_or(0.3))),
            "elu" => Ok(ActivationSpec::Elu(arg.unwrap_or(1.0))),
            "gelu" => plain(ActivationSpec::Gelu),
            "sigmoid" => plain(ActivationSpec::Sigmoid),
            "tanh" => plain(ActivationSpec::Tanh),
            "softmax" => plain(ActivationSpec::Softmax),
            _ => Err(format!(
                "unknown activation '{name}' (expected one of linear, relu, leaky_relu, elu, gelu, sigmoid, tanh, softmax)"
            )),
        }
    }
}

impl Serialize for ActivationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ActivationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_parameters() {
        assert_eq!("relu".parse(), Ok(ActivationSpec::Relu));
        assert_eq!("leaky_relu".parse(), Ok(ActivationSpec::LeakyRelu(0.3)));
        assert_eq!(
            "leaky_relu(0.1)".parse(),
            Ok(ActivationSpec::LeakyRelu(0.1))
        );
        assert_eq!("elu( 2 )".parse(), Ok(ActivationSpec::Elu(2.0)));
        assert!("relu(1)".parse::<ActivationSpec>().is_err());
        assert!("swish"
            .parse::<ActivationSpec>()
            .unwrap_err()
            .contains("unknown activation"));
        for a in ["gelu", "tanh", "sigmoid", "softmax", "linear", "elu(0.5)"] {
            let parsed: ActivationSpec = a.parse().unwrap();
            assert_eq!(parsed.to_string().parse::<ActivationSpec>(), Ok(parsed));
        }
    }
}
