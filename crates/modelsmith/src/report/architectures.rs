//! The best architectures of an architecture search: each trial's `genome` built into its
//! network, listed layer by layer with output shapes and parameter counts.

use serde::Serialize;

use super::StudyData;
use crate::arch::{Cost, Genome};
use crate::model::{build_network, OutputLayer};
use crate::search::FrozenTrial;

#[derive(Clone, Debug, Serialize)]
pub struct Architecture {
    pub number: u64,
    pub value: f64,
    pub params: usize,
    pub flops: u64,
    pub input_shape: Vec<usize>,
    pub layers: Vec<ArchitectureLayer>,
    pub mutation: Option<serde_json::Value>,
    pub parent: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ArchitectureLayer {
    pub name: String,
    /// The layer type (`conv2d`, `dense`, …).
    pub kind: String,
    /// Per-example output shape.
    pub output_shape: Vec<usize>,
    pub params: usize,
    /// The layers it reads ("input" is the network input); a residual's shortcut shows here.
    pub inputs: Vec<String>,
}

/// The `limit` best complete trials that carry a genome, best first.
pub fn best_architectures(data: &StudyData, limit: usize) -> Vec<Architecture> {
    let direction = data.direction();
    let mut trials: Vec<&FrozenTrial> = data
        .complete()
        .filter(|t| t.attrs.contains_key("genome"))
        .collect();
    trials.sort_by(|a, b| {
        let (a, b) = (a.value.unwrap_or(f64::NAN), b.value.unwrap_or(f64::NAN));
        direction.as_loss(a).total_cmp(&direction.as_loss(b))
    });
    trials
        .into_iter()
        .filter_map(|t| architecture(data, t))
        .take(limit)
        .collect()
}

fn architecture(data: &StudyData, t: &FrozenTrial) -> Option<Architecture> {
    let genome: Genome = serde_json::from_value(t.attrs.get("genome")?.clone()).ok()?;
    let (input_shape, classes) = input_of(data, t)?;
    let output = OutputLayer::classes(classes);
    let spec = genome.to_spec(&input_shape, output);
    let net = build_network(&spec, &input_shape, output.outputs, 0).ok()?;
    let slot_name = |slot: usize| match slot {
        0 => "input".to_string(),
        s => net.nodes()[s - 1].name.clone(),
    };
    let layers = spec
        .layers
        .iter()
        .zip(net.nodes())
        .enumerate()
        .map(|(i, (layer, node))| ArchitectureLayer {
            name: node.name.clone(),
            kind: layer.kind.type_name().to_string(),
            output_shape: net.shapes()[i + 1].clone(),
            params: node.layer.params().iter().map(|p| p.value.len()).sum(),
            inputs: node.inputs.iter().map(|&s| slot_name(s)).collect(),
        })
        .collect();
    Some(Architecture {
        number: t.number,
        value: t.value?,
        params: net.param_count(),
        flops: 2 * net.macs_per_example(),
        input_shape,
        layers,
        mutation: t.attrs.get("mutation").cloned(),
        parent: t.attrs.get("parent").cloned(),
    })
}

/// The cost of a trial's genome (for the Pareto front when no size attr was recorded).
pub(crate) fn genome_cost(data: &StudyData, t: &FrozenTrial) -> Option<Cost> {
    let genome: Genome = serde_json::from_value(t.attrs.get("genome")?.clone()).ok()?;
    let (input_shape, classes) = input_of(data, t)?;
    // The head's activation changes neither the cost nor the layers shown.
    genome
        .cost(&input_shape, OutputLayer::classes(classes))
        .ok()
}

/// The examples' shape and the number of classes: recorded by the trial or the study
/// (`input_shape`, `num_classes`), or known from the bundled data sets the study trains on.
fn input_of(data: &StudyData, t: &FrozenTrial) -> Option<(Vec<usize>, usize)> {
    let study = &data.study.attrs;
    let recorded = |key: &str| t.attrs.get(key).or_else(|| study.get(key)).cloned();
    if let (Some(shape), Some(classes)) = (recorded("input_shape"), recorded("num_classes")) {
        return Some((
            serde_json::from_value(shape).ok()?,
            serde_json::from_value(classes).ok()?,
        ));
    }
    // tune's config (`train.data`), auto's (`auto.data`), or the trial's training config.
    let spec = ["/train/data", "/auto/data", "/data"]
        .iter()
        .find_map(|p| study.pointer(p).and_then(serde_json::Value::as_str))
        .or_else(|| t.attrs.get("config")?.get("data")?.as_str())?;
    match spec {
        "digits" | "fashion-mnist" => Some((vec![28, 28, 1], 10)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::arch::SpaceLimits;
    use crate::report::pareto_front;
    use crate::report::plots::architectures_svg;
    use crate::report::testing::{study, trial};
    use crate::search::{Direction, TrialState};

    /// Four sampled image genomes as complete trials of an architecture search on 28x28x1.
    fn arch_study() -> (StudyData, Vec<Cost>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut costs = Vec::new();
        let trials = (0..4)
            .map(|n| {
                let (genome, cost) = SpaceLimits::default()
                    .sample(&[28, 28, 1], OutputLayer::classes(10), &mut rng, 200)
                    .unwrap();
                costs.push(cost);
                let mut t = trial(n, TrialState::Complete, Some(0.8 + 0.05 * n as f64));
                t.attrs
                    .insert("genome".into(), serde_json::to_value(&genome).unwrap());
                t
            })
            .collect();
        let mut data = study(Direction::Maximize, trials);
        data.study.attrs = serde_json::json!({
            "study": {"metric": "val_accuracy"}, "input_shape": [28, 28, 1], "num_classes": 10
        });
        (data, costs)
    }

    #[test]
    fn the_best_genomes_are_built_layer_by_layer() {
        let (data, costs) = arch_study();
        let archs = best_architectures(&data, 3);
        let numbers: Vec<u64> = archs.iter().map(|a| a.number).collect();
        assert_eq!(numbers, [3, 2, 1], "best first");
        for a in &archs {
            assert_eq!(a.params, costs[a.number as usize].params);
            let layer_params: usize = a.layers.iter().map(|l| l.params).sum();
            assert_eq!(layer_params, a.params);
            assert_eq!(a.layers.last().unwrap().output_shape, [10]);
            assert_eq!(a.layers[0].inputs, ["input"]);
        }
        let svg = architectures_svg(&archs);
        let boxes = svg.matches("class=\"ms-layer\"").count();
        assert_eq!(boxes, archs.iter().map(|a| a.layers.len()).sum::<usize>());
    }

    #[test]
    fn genome_sizes_make_a_pareto_front() {
        let (data, _) = arch_study();
        let front = pareto_front(&data);
        let names: Vec<&str> = front.objectives.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["val_accuracy", "params", "flops"]);
        assert_eq!(front.points.len(), 4);
        assert!(front.points.iter().any(|p| p.on_front));
    }

    #[test]
    fn without_a_known_input_shape_there_is_no_drawing() {
        let (mut data, _) = arch_study();
        data.study.attrs = serde_json::json!({});
        assert!(best_architectures(&data, 3).is_empty());
        data.study.attrs = serde_json::json!({"train": {"data": "digits"}});
        assert_eq!(best_architectures(&data, 3).len(), 3);
    }
}
