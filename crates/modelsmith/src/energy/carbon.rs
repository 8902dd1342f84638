//! Grid carbon intensity: grams of CO2-equivalent per kWh, and the emissions of an energy.

use crate::{Error, Result};

/// When none is given: the world average of the IEA's Global Energy & CO2 Status Report 2019
/// (CodeCarbon's fallback too), in g CO2e per kWh.
pub const DEFAULT_G_PER_KWH: f64 = 475.0;

/// The environment variable naming the intensity when no flag does.
pub const ENV: &str = "MODELSMITH_CARBON_INTENSITY";

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CarbonIntensity {
    pub g_per_kwh: f64,
    /// Where the figure came from, in a few words.
    pub source: String,
}

impl CarbonIntensity {
    /// `--carbon-intensity` when given, else `MODELSMITH_CARBON_INTENSITY`, else the world
    /// average. A value that is not a finite number ≥ 0 is a config error naming it.
    pub fn resolve(flag: Option<f64>) -> Result<CarbonIntensity> {
        if let Some(g) = flag {
            return Self::checked(g, "--carbon-intensity");
        }
        if let Ok(text) = std::env::var(ENV) {
            let g = text.trim().parse::<f64>().map_err(|_| {
                Error::Config(format!(
                    "{ENV}={text:?} is not a number of grams CO2e per kWh"
                ))
            })?;
            return Self::checked(g, ENV);
        }
        Ok(CarbonIntensity {
            g_per_kwh: DEFAULT_G_PER_KWH,
            source: "world average (IEA 2019); --carbon-intensity for your grid".into(),
        })
    }

    fn checked(g: f64, from: &str) -> Result<CarbonIntensity> {
        if !g.is_finite() || g < 0.0 {
            return Err(Error::Config(format!(
                "{from} must be grams CO2e per kWh, a number >= 0 (got {g})"
            )));
        }
        Ok(CarbonIntensity {
            g_per_kwh: g,
            source: from.into(),
        })
    }

    /// Grams CO2e for `joules` of electricity.
    pub fn grams(&self, joules: f64) -> f64 {
        joules / 3.6e6 * self.g_per_kwh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_default_and_bad_values() {
        let c = CarbonIntensity::resolve(Some(100.0)).unwrap();
        // 3.6 MJ = 1 kWh.
        assert!((c.grams(3.6e6) - 100.0).abs() < 1e-9);
        assert!(CarbonIntensity::resolve(Some(-1.0)).is_err());
        assert!(CarbonIntensity::resolve(Some(f64::NAN)).is_err());
        if std::env::var_os(ENV).is_none() {
            let d = CarbonIntensity::resolve(None).unwrap();
            assert_eq!(d.g_per_kwh, DEFAULT_G_PER_KWH);
        }
    }
}
