//! Writing models as ONNX files with tract's own protobuf types (`tract_onnx::pb`) and `prost`.
//!
//! Why: every shipped model is an ONNX file any tool can inspect (Netron, onnxruntime, tract), even
//! the ones trained here in Rust. A [`TreeEnsemble`] becomes one `ai.onnx.ml` `TreeEnsembleClassifier`
//! node laid out the way `XGBoost`'s binary exporters write it — every leaf contributes to class id 0,
//! `classlabels_int64s = [0, 1]` — which tract and ONNX Runtime both read as "probabilities =
//! `[1 − σ(s), σ(s)]`". There is no `base_values` attribute: tract rejects the two-entry form
//! onnxmltools writes, and our base score already lives in tree 0's leaves (see `trees`).
//!
//! The graph: input `input` `float[N, inputs]` (symbolic batch `N`, so one plan serves batch 1 and 32),
//! outputs `label` `int64[N]` and `probabilities` `float[N, 2]`. Opsets: default 17, `ai.onnx.ml` 3;
//! IR version 8. Key/value metadata (model card fields) go in `metadata_props`.

use prost::Message;
use tract_onnx::pb::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
    attribute_proto::AttributeType,
    tensor_proto::DataType,
    tensor_shape_proto::{Dimension, dimension},
    type_proto,
};

use super::{
    MlError,
    trees::{Node, TreeEnsemble},
};

/// Name of the graph input.
pub const INPUT: &str = "input";
/// Name of the class-label output.
pub const LABEL: &str = "label";
/// Name of the probabilities output (`[1 − p, p]` per row).
pub const PROBABILITIES: &str = "probabilities";

/// The transform applied to the summed leaf values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostTransform {
    /// `σ(score)`: probabilities (what ships).
    Logistic,
    /// The raw score itself (used by tests to compare sums bit for bit).
    None,
}

impl PostTransform {
    fn as_str(self) -> &'static str {
        match self {
            Self::Logistic => "LOGISTIC",
            Self::None => "NONE",
        }
    }
}

fn ints(name: &str, values: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values,
        ..AttributeProto::default()
    }
}

fn floats(name: &str, values: Vec<f32>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Floats as i32,
        floats: values,
        ..AttributeProto::default()
    }
}

fn strings(name: &str, values: Vec<&str>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Strings as i32,
        strings: values.into_iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..AttributeProto::default()
    }
}

fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: value.as_bytes().to_vec(),
        ..AttributeProto::default()
    }
}

fn dim_value(value: i64) -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimValue(value)),
        ..Dimension::default()
    }
}

fn dim_param(name: &str) -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimParam(name.into())),
        ..Dimension::default()
    }
}

fn tensor_info(name: &str, elem_type: DataType, dims: Vec<Dimension>) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem_type as i32,
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

/// The `TreeEnsembleClassifier` node of `ensemble`.
fn classifier_node(ensemble: &TreeEnsemble, post_transform: PostTransform) -> NodeProto {
    let mut tree_ids = Vec::new();
    let mut node_ids = Vec::new();
    let mut feature_ids = Vec::new();
    let mut modes = Vec::new();
    let mut values = Vec::new();
    let mut true_ids = Vec::new();
    let mut false_ids = Vec::new();
    let (mut leaf_tree, mut leaf_node, mut leaf_weight) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..ensemble.tree_count() {
        for (n, node) in ensemble.tree(t).enumerate() {
            tree_ids.push(t as i64);
            node_ids.push(n as i64);
            if node.is_leaf() {
                feature_ids.push(0);
                modes.push("LEAF");
                values.push(0.0);
                true_ids.push(0);
                false_ids.push(0);
                leaf_tree.push(t as i64);
                leaf_node.push(n as i64);
                leaf_weight.push(node.value);
            } else {
                feature_ids.push(i64::from(node.feature));
                modes.push("BRANCH_LEQ");
                values.push(node.value);
                true_ids.push(i64::from(node.left));
                false_ids.push(i64::from(node.right));
            }
        }
    }
    let leaves = leaf_tree.len();
    NodeProto {
        input: vec![INPUT.into()],
        output: vec![LABEL.into(), PROBABILITIES.into()],
        name: "signal_trees".into(),
        op_type: "TreeEnsembleClassifier".into(),
        domain: "ai.onnx.ml".into(),
        attribute: vec![
            ints("classlabels_int64s", vec![0, 1]),
            ints("class_ids", vec![0; leaves]),
            ints("class_nodeids", leaf_node),
            ints("class_treeids", leaf_tree),
            floats("class_weights", leaf_weight),
            ints("nodes_falsenodeids", false_ids),
            ints("nodes_featureids", feature_ids),
            ints("nodes_missing_value_tracks_true", vec![0; tree_ids.len()]),
            strings("nodes_modes", modes),
            ints("nodes_nodeids", node_ids),
            ints("nodes_treeids", tree_ids),
            ints("nodes_truenodeids", true_ids),
            floats("nodes_values", values),
            string("post_transform", post_transform.as_str()),
        ],
        ..NodeProto::default()
    }
}

/// The ONNX model of a binary tree-ensemble classifier, with `metadata` as `metadata_props`.
pub fn tree_classifier(
    ensemble: &TreeEnsemble,
    post_transform: PostTransform,
    graph_name: &str,
    metadata: &[(String, String)],
) -> ModelProto {
    let graph = GraphProto {
        node: vec![classifier_node(ensemble, post_transform)],
        name: graph_name.into(),
        input: vec![tensor_info(
            INPUT,
            DataType::Float,
            vec![dim_param("N"), dim_value(ensemble.inputs() as i64)],
        )],
        output: vec![
            tensor_info(LABEL, DataType::Int64, vec![dim_param("N")]),
            tensor_info(PROBABILITIES, DataType::Float, vec![dim_param("N"), dim_value(2)]),
        ],
        ..GraphProto::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        producer_name: "perpdesk".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: metadata
            .iter()
            .map(|(key, value)| StringStringEntryProto {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        ..ModelProto::default()
    }
}

/// The protobuf bytes of `model` (what goes in the `.onnx` file).
pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Parses ONNX bytes back (to read metadata without building a plan).
pub fn decode(bytes: &[u8]) -> Result<ModelProto, prost::DecodeError> {
    pb::ModelProto::decode(bytes)
}

/// Reads back a binary tree classifier written by [`tree_classifier`] (`BRANCH_LEQ` splits, every leaf
/// on class 0, no `base_values`, `LOGISTIC`), so a shipped file can run natively. Anything else is
/// refused rather than guessed at.
pub fn tree_ensemble_from(model: &ModelProto) -> Result<TreeEnsemble, MlError> {
    let format = |message: &str| MlError::Format(message.to_owned());
    let graph = model.graph.as_ref().ok_or_else(|| format("no graph"))?;
    let [node] = graph.node.as_slice() else {
        return Err(format("expected exactly one node"));
    };
    if node.op_type != "TreeEnsembleClassifier" {
        return Err(MlError::Format(format!("unexpected operator {}", node.op_type)));
    }
    let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
    let ints_of = |name: &str| -> Result<&[i64], MlError> {
        attr(name)
            .map(|a| a.ints.as_slice())
            .ok_or_else(|| MlError::Format(format!("missing attribute {name}")))
    };
    let floats_of = |name: &str| -> Result<&[f32], MlError> {
        attr(name)
            .map(|a| a.floats.as_slice())
            .ok_or_else(|| MlError::Format(format!("missing attribute {name}")))
    };
    if attr("base_values").is_some() {
        return Err(format("base_values is not supported (fold it into the leaves)"));
    }
    if attr("post_transform").map(|a| a.s.as_slice()) != Some(b"LOGISTIC".as_slice()) {
        return Err(format("post_transform must be LOGISTIC"));
    }
    if ints_of("classlabels_int64s")? != [0, 1] || ints_of("class_ids")?.iter().any(|c| *c != 0) {
        return Err(format("not a binary classifier with class-0 leaves"));
    }
    let inputs = graph
        .input
        .first()
        .and_then(|i| i.r#type.as_ref())
        .and_then(|t| match &t.value {
            Some(type_proto::Value::TensorType(tensor)) => tensor.shape.as_ref(),
            None => None,
        })
        .and_then(|shape| shape.dim.get(1))
        .and_then(|d| match d.value {
            Some(dimension::Value::DimValue(v)) => usize::try_from(v).ok(),
            _ => None,
        })
        .ok_or_else(|| format("input must be float[N, inputs]"))?;
    let tree_ids = ints_of("nodes_treeids")?;
    let node_ids = ints_of("nodes_nodeids")?;
    let features = ints_of("nodes_featureids")?;
    let values = floats_of("nodes_values")?;
    let true_ids = ints_of("nodes_truenodeids")?;
    let false_ids = ints_of("nodes_falsenodeids")?;
    let modes = attr("nodes_modes")
        .map(|a| a.strings.as_slice())
        .ok_or_else(|| format("missing attribute nodes_modes"))?;
    let (leaf_trees, leaf_nodes, leaf_weights) = (
        ints_of("class_treeids")?,
        ints_of("class_nodeids")?,
        floats_of("class_weights")?,
    );
    let n = tree_ids.len();
    if [
        node_ids.len(),
        features.len(),
        values.len(),
        true_ids.len(),
        false_ids.len(),
        modes.len(),
    ]
    .iter()
    .any(|len| *len != n)
        || leaf_nodes.len() != leaf_trees.len()
        || leaf_weights.len() != leaf_trees.len()
    {
        return Err(format("node or leaf attributes differ in length"));
    }
    let to_u32 = |v: i64| u32::try_from(v).map_err(|_| format("negative or huge id"));
    let mut trees: Vec<Vec<Node>> = Vec::new();
    for i in 0..n {
        let (t, id) = (to_u32(tree_ids[i])? as usize, to_u32(node_ids[i])? as usize);
        if t > trees.len() || (t == trees.len()) != (id == 0) {
            return Err(format("trees and nodes must be listed in order"));
        }
        if t == trees.len() {
            trees.push(Vec::new());
        }
        let tree = &mut trees[t];
        if id != tree.len() {
            return Err(format("node ids must count up within a tree"));
        }
        tree.push(match modes[i].as_slice() {
            b"LEAF" => Node::leaf(f32::NAN),
            b"BRANCH_LEQ" => Node {
                feature: to_u32(features[i])?,
                value: values[i],
                left: to_u32(true_ids[i])?,
                right: to_u32(false_ids[i])?,
            },
            other => {
                return Err(MlError::Format(format!(
                    "unsupported node mode {}",
                    String::from_utf8_lossy(other)
                )));
            }
        });
    }
    for ((t, id), weight) in leaf_trees.iter().zip(leaf_nodes).zip(leaf_weights) {
        let (t, id) = (to_u32(*t)? as usize, to_u32(*id)? as usize);
        let node = trees
            .get_mut(t)
            .and_then(|tree| tree.get_mut(id))
            .filter(|n| n.is_leaf())
            .ok_or_else(|| format("a leaf weight names no leaf"))?;
        if !node.value.is_nan() {
            return Err(format("a leaf has two weights"));
        }
        node.value = *weight;
    }
    // A leaf left without a weight stays NaN, which TreeEnsemble::new refuses.
    Ok(TreeEnsemble::new(inputs, &trees)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::ml::{
        gbdt::{self, Dataset, GbdtParams},
        runtime::{Model, NativeTrees, TractModel},
        trees::sigmoid,
    };

    const INPUTS: usize = 6;

    /// An ensemble trained on a noisy nonlinear rule, deep enough to use every input.
    fn trained() -> TreeEnsemble {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let rows = 1500;
        let x: Vec<f32> = (0..rows * INPUTS).map(|_| rng.random_range(-2.0..2.0)).collect();
        let y: Vec<f32> = x
            .chunks_exact(INPUTS)
            .map(|r| {
                let logit =
                    r[0] * r[1] - r[2] + f32::from(u8::from(r[3] > 0.5)) * 2.0 - r[4].abs() + 0.1 * r[5];
                if rng.random::<f32>() < sigmoid(logit) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let w: Vec<f32> = (0..rows).map(|i| 0.5 + (i % 4) as f32 * 0.25).collect();
        let params = GbdtParams {
            trees: 40,
            max_depth: 4,
            learning_rate: 0.2,
            ..GbdtParams::default()
        };
        gbdt::train(
            &Dataset {
                inputs: INPUTS,
                x: &x,
                y: &y,
                w: &w,
            },
            &params,
        )
        .unwrap()
    }

    /// Random rows plus rows sitting exactly on split thresholds (where `<=` against `<` would differ).
    fn probe_rows(ensemble: &TreeEnsemble, count: usize) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let thresholds: Vec<(u32, f32)> = (0..ensemble.tree_count())
            .flat_map(|t| ensemble.tree(t).collect::<Vec<_>>())
            .filter(|n| !n.is_leaf())
            .map(|n| (n.feature, n.value))
            .collect();
        let mut rows = Vec::with_capacity(count * INPUTS);
        for i in 0..count {
            let mut row: [f32; INPUTS] = std::array::from_fn(|_| rng.random_range(-3.0..3.0));
            if i % 2 == 0 {
                let (feature, value) = thresholds[i % thresholds.len()];
                row[feature as usize] = value;
            }
            rows.extend_from_slice(&row);
        }
        rows
    }

    fn tract_of(ensemble: &TreeEnsemble, post: PostTransform) -> TractModel {
        let bytes = encode(&tree_classifier(ensemble, post, "test", &[]));
        TractModel::from_bytes(&bytes, INPUTS, 1, 2).unwrap()
    }

    #[test]
    fn tract_reproduces_the_native_scores_bit_for_bit_and_probabilities_within_1e6() {
        let ensemble = trained();
        assert!(ensemble.max_depth() >= 3);
        let rows = probe_rows(&ensemble, 1024);
        let n = rows.len() / INPUTS;

        // Raw scores (post_transform NONE): the same f32 sums in the same order, so exactly equal.
        let raw = tract_of(&ensemble, PostTransform::None);
        let mut out = vec![0.0; n * 2];
        raw.predict(&rows, &mut out).unwrap();
        for (row, pair) in rows.chunks_exact(INPUTS).zip(out.chunks_exact(2)) {
            assert_eq!(pair[1].to_bits(), ensemble.score(row).to_bits(), "row {row:?}");
        }

        // Probabilities: tract's sigmoid is an approximation of the exact one used natively.
        let native = NativeTrees {
            ensemble: std::sync::Arc::new(ensemble.clone()),
        };
        let tract = tract_of(&ensemble, PostTransform::Logistic);
        let mut a = vec![0.0; n * 2];
        let mut b = vec![0.0; n * 2];
        native.predict(&rows, &mut a).unwrap();
        tract.predict(&rows, &mut b).unwrap();
        let worst = a
            .iter()
            .zip(&b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0_f32, f32::max);
        assert!(worst <= 1e-6, "max |native − tract| = {worst}");

        // The same plan at batch 1 and batch 32 gives the batch results.
        for (i, row) in rows.chunks_exact(INPUTS).take(40).enumerate() {
            let mut one = [0.0; 2];
            tract.predict(row, &mut one).unwrap();
            assert_eq!(one, [b[2 * i], b[2 * i + 1]]);
        }
        let mut batch32 = vec![0.0; 64];
        tract.predict(&rows[..32 * INPUTS], &mut batch32).unwrap();
        assert_eq!(batch32, b[..64]);
    }

    #[test]
    fn the_file_reads_back_into_the_same_ensemble_with_its_metadata() {
        let ensemble = trained();
        let metadata = vec![("version".to_owned(), "v1".to_owned())];
        let bytes = encode(&tree_classifier(
            &ensemble,
            PostTransform::Logistic,
            "g",
            &metadata,
        ));
        let proto = decode(&bytes).unwrap();
        assert_eq!(proto.metadata_props[0].value, "v1");
        assert_eq!(proto.opset_import.len(), 2);
        assert_eq!(tree_ensemble_from(&proto).unwrap(), ensemble);

        // Files this reader does not understand are refused, not misread.
        let raw = decode(&encode(&tree_classifier(
            &ensemble,
            PostTransform::None,
            "g",
            &[],
        )))
        .unwrap();
        assert!(matches!(tree_ensemble_from(&raw), Err(MlError::Format(_))));
        let mut with_base = proto.clone();
        with_base.graph.as_mut().unwrap().node[0]
            .attribute
            .push(floats("base_values", vec![0.1, 0.2]));
        assert!(matches!(tree_ensemble_from(&with_base), Err(MlError::Format(_))));
        let mut missing_leaf = proto;
        let node = &mut missing_leaf.graph.as_mut().unwrap().node[0];
        for attr in &mut node.attribute {
            if ["class_ids", "class_nodeids", "class_treeids"].contains(&attr.name.as_str()) {
                attr.ints.pop();
            }
            if attr.name == "class_weights" {
                attr.floats.pop();
            }
        }
        assert!(tree_ensemble_from(&missing_leaf).is_err());
    }

    #[test]
    fn tract_refuses_a_batch_of_the_wrong_shape() {
        let tract = tract_of(&trained(), PostTransform::Logistic);
        let mut out = [0.0; 2];
        assert!(matches!(
            tract.predict(&[0.0; 5], &mut out),
            Err(MlError::Shape(_))
        ));
        assert!(matches!(
            tract.predict(&[0.0; 12], &mut out),
            Err(MlError::Shape(_))
        ));
    }
}
