//! [`Units`]: what a person reads an explanation over — pixels of an image (its channels
//! together) or columns of a table (a categorical column's one-hot block together).

use crate::data::Preprocessing;

#[derive(Clone, Debug)]
pub struct Units {
    /// A name per unit: the column's header for tables, `row,col` for pixels.
    pub names: Vec<String>,
    /// The model input values each unit covers.
    pub groups: Vec<Vec<usize>>,
}

impl Units {
    pub fn of(preprocessing: &Preprocessing) -> Units {
        match preprocessing {
            Preprocessing::Image {
                height,
                width,
                channels,
                ..
            } => {
                let (h, w, c) = (*height, *width, *channels);
                Units {
                    names: (0..h * w).map(|p| format!("{},{}", p / w, p % w)).collect(),
                    groups: (0..h * w).map(|p| (p * c..(p + 1) * c).collect()).collect(),
                }
            }
            Preprocessing::Table { columns, .. } => {
                let mut start = 0;
                let mut groups = Vec::with_capacity(columns.len());
                for c in columns {
                    let width = c.kind.width();
                    groups.push((start..start + width).collect());
                    start += width;
                }
                Units {
                    names: columns.iter().map(|c| c.name.clone()).collect(),
                    groups,
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Attributions per input value summed to one per unit.
    pub fn sum(&self, values: &[f32]) -> Vec<f32> {
        self.groups
            .iter()
            .map(|g| g.iter().map(|&i| values[i]).sum())
            .collect()
    }
}
