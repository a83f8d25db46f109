//! The section deserializer: defaults, merging, and the position and wording of every kind of
//! error, on a parameter struct shaped like a real policy's (nested lists and options too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mptcp_pmd_policies::params::{self, from_node, Key, Keys, Node, ParamError, Pos, Value};
use serde::Deserialize;

#[derive(Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Demo {
    #[serde(deserialize_with = "params::int::<_, _, 1, 64>")]
    count: u8,
    #[serde(deserialize_with = "params::boolean")]
    on: bool,
    port: Option<u16>,
    names: Vec<String>,
    inner: Inner,
}

#[derive(Debug, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Inner {
    #[serde(deserialize_with = "params::int::<_, _, 0, 9>")]
    level: u8,
}

impl Default for Demo {
    fn default() -> Self {
        Demo {
            count: 8,
            on: false,
            port: None,
            names: Vec::new(),
            inner: Inner::default(),
        }
    }
}

fn at(line: u64, col: u64) -> Pos {
    Pos { line, col }
}

fn n(value: Value, line: u64, col: u64) -> Node {
    Node {
        value,
        at: at(line, col),
    }
}

/// A mapping whose entry i sits on line i + 2: key at column 3, value at column 10.
fn map(entries: Vec<(&str, Value)>) -> Node {
    let entries = entries
        .into_iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let line = i as u64 + 2;
            (
                Key {
                    name: k.to_owned(),
                    at: at(line, 3),
                },
                n(v, line, 10),
            )
        })
        .collect();
    n(Value::Map(entries), 1, 1)
}

fn demo(node: &Node) -> Result<Demo, ParamError> {
    from_node(node, &Keys::new("rules[1].demo"))
}

#[test]
fn empty_and_null_sections_are_the_defaults() {
    assert_eq!(demo(&Node::empty()).unwrap(), Demo::default());
    assert_eq!(demo(&n(Value::Null, 1, 1)).unwrap(), Demo::default());
}

#[test]
fn every_kind_of_value_is_read() {
    let node = map(vec![
        ("count", Value::Int(3)),
        ("on", Value::Bool(true)),
        ("port", Value::Int(8080)),
        (
            "names",
            Value::Seq(vec![
                n(Value::Str("eth*".into()), 5, 12),
                // A number where a string is expected keeps its spelling.
                n(Value::Int(1), 5, 18),
            ]),
        ),
        ("inner", Value::Map(vec![])),
    ]);
    assert_eq!(
        demo(&node).unwrap(),
        Demo {
            count: 3,
            on: true,
            port: Some(8080),
            names: vec!["eth*".into(), "1".into()],
            inner: Inner::default(),
        }
    );
}

#[test]
fn value_errors_name_the_full_key_and_point_at_the_value() {
    let e = demo(&map(vec![("count", Value::Int(0))])).unwrap_err();
    assert_eq!(
        e,
        ParamError::Value {
            key: "rules[1].demo.count".into(),
            at: Some(at(2, 10)),
            msg: "rules[1].demo.count must be an integer between 1 and 64, got 0".into(),
        }
    );
    let e = demo(&map(vec![("on", Value::Str("yes".into()))])).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"rules[1].demo.on must be true or false, got "yes""#
    );
    let e = demo(&map(vec![("count", Value::Float(1.5))])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "rules[1].demo.count must be an integer between 1 and 64, got 1.5"
    );
    // Nested: the path goes through the inner mapping, the position is the inner value's.
    let inner = Value::Map(vec![(
        Key {
            name: "level".into(),
            at: at(3, 5),
        },
        n(Value::Int(10), 3, 12),
    )]);
    let e = demo(&map(vec![("on", Value::Bool(true)), ("inner", inner)])).unwrap_err();
    assert_eq!(
        e,
        ParamError::Value {
            key: "rules[1].demo.inner.level".into(),
            at: Some(at(3, 12)),
            msg: "rules[1].demo.inner.level must be an integer between 0 and 9, got 10".into(),
        }
    );
}

#[test]
fn shape_errors_point_at_the_key_or_the_misshapen_value() {
    let e = demo(&map(vec![
        ("count", Value::Int(3)),
        ("cuont", Value::Int(3)),
    ]))
    .unwrap_err();
    assert_eq!(
        e,
        ParamError::Shape {
            at: Some(at(3, 3)),
            msg: "unknown field `cuont`, expected one of count, on, port, names, inner".into(),
        }
    );
    let e = demo(&map(vec![("count", Value::Seq(vec![]))])).unwrap_err();
    assert_eq!(
        e,
        ParamError::Shape {
            at: Some(at(2, 3)),
            msg: "invalid type: sequence, expected a single value (number, true/false or string)"
                .into(),
        }
    );
    let e = demo(&map(vec![("names", Value::Str("eth0".into()))])).unwrap_err();
    assert_eq!(
        e,
        ParamError::Shape {
            at: Some(at(2, 10)),
            msg: "expected a list (`[a, b]` or `- a` lines)".into(),
        }
    );
    let e = demo(&n(Value::Int(3), 1, 7)).unwrap_err();
    assert_eq!(
        e,
        ParamError::Shape {
            at: Some(at(1, 7)),
            msg: "expected a mapping (indented `key: value` lines or `{key: value}`)".into(),
        }
    );
    // A list element: its own position.
    let names = Value::Seq(vec![
        n(Value::Str("a".into()), 4, 8),
        n(Value::Seq(vec![]), 4, 11),
    ]);
    let e = demo(&map(vec![("names", names)])).unwrap_err();
    assert_eq!(
        e,
        ParamError::Shape {
            at: Some(at(4, 11)),
            msg: "expected a single value, not a list or mapping".into(),
        }
    );
}

#[test]
fn merge_keeps_the_base_keys_the_override_does_not_set() {
    let base = map(vec![("count", Value::Int(3)), ("on", Value::Bool(true))]);
    let over = map(vec![("count", Value::Int(5))]);
    let merged = base.merged(&over);
    let d = demo(&merged).unwrap();
    assert_eq!((d.count, d.on), (5, true));
    // An empty override keeps the base; a base that is not a mapping gives way.
    assert_eq!(demo(&base.merged(&n(Value::Null, 9, 9))).unwrap().count, 3);
    assert_eq!(demo(&n(Value::Null, 1, 1).merged(&over)).unwrap().count, 5);
    assert_eq!(merged.get("count").map(|(k, _)| k.at), Some(at(2, 3)));
}
