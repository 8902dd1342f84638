//! Micro-benchmark of the pooling kernels on the seed CNN's first pooling shape.
//! Run: `cargo run --release -p modelsmith-engine --example pool_micro`
use modelsmith_engine::backend::PoolGeom;
use modelsmith_engine::cpu;
use std::time::Instant;

fn main() {
    let g = PoolGeom {
        n: 128,
        h: 26,
        w: 26,
        c: 32,
        oh: 13,
        ow: 13,
        k: 2,
        stride: 2,
        pad_top: 0,
        pad_left: 0,
    };
    let x: Vec<f32> = (0..g.n * g.h * g.w * g.c)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let mut y = vec![0.0; g.n * g.oh * g.ow * g.c];
    let mut am = vec![0u32; y.len()];
    let mut dx = vec![0.0; x.len()];
    for _ in 0..3 {
        cpu().max_pool_forward(&mut y, Some(&mut am), &x, &g);
    }
    let t = Instant::now();
    for _ in 0..20 {
        cpu().max_pool_forward(&mut y, Some(&mut am), &x, &g);
    }
    println!("max fwd {:.3} ms", t.elapsed().as_secs_f64() * 1e3 / 20.0);
    let t = Instant::now();
    for _ in 0..20 {
        cpu().max_pool_backward(&mut dx, &y, &am, &g);
    }
    println!("max bwd {:.3} ms", t.elapsed().as_secs_f64() * 1e3 / 20.0);
}
