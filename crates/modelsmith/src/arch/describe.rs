//! One-line descriptions of genomes for leaderboards and progress lines, e.g.
//! `conv3x32+bn relu > pool max > res3x64 relu > gap > d128 relu > out`.

use std::fmt;

use super::space::{BlockOp, ConvParams, Genome, HeadPooling, PoolKind};

impl fmt::Display for Genome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        match self {
            Genome::Image(g) => {
                for b in &g.blocks {
                    parts.push(match &b.op {
                        BlockOp::Conv(p) => conv("conv", p),
                        BlockOp::Residual(p) => conv("res", p),
                        BlockOp::Pool { pool } => match pool {
                            PoolKind::Max => "pool max".into(),
                            PoolKind::Avg => "pool avg".into(),
                        },
                        BlockOp::Dropout { rate } => format!("drop {rate}"),
                    });
                }
                parts.push(
                    match g.head.pooling {
                        HeadPooling::GlobalAvg => "gap",
                        HeadPooling::Flatten => "flat",
                    }
                    .into(),
                );
                for h in &g.head.hidden {
                    parts.push(format!("d{} {}", h.units, g.head.activation));
                }
                if g.head.dropout > 0.0 && !g.head.hidden.is_empty() {
                    parts.push(format!("drop {}", g.head.dropout));
                }
            }
            Genome::Table(g) => {
                let bn = if g.batch_norm { "+bn" } else { "" };
                for h in &g.hidden {
                    parts.push(format!("d{}{bn} {}", h.units, g.activation));
                }
                if g.dropout > 0.0 && !g.hidden.is_empty() {
                    parts.push(format!("drop {}", g.dropout));
                }
            }
        }
        parts.push("out".into());
        f.write_str(&parts.join(" > "))
    }
}

fn conv(kind: &str, p: &ConvParams) -> String {
    let bn = if p.batch_norm { "+bn" } else { "" };
    format!("{kind}{}x{}{bn} {}", p.kernel, p.filters, p.activation)
}
