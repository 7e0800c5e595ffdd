//! Which fields a catalogue reads, and reading them from an event in one pass over its JSON.
//!
//! Lookup (docs/semantics.md, Fields): a name without a dot is read at the top level, then in
//! `properties` (a top-level null gives way); a dotted name is a literal path from the top level.
//! A JSON null counts as missing. The paths every field needs form a trie; decoding an event
//! captures the value at each of its nodes, so that a field is then one or two slot reads.

use crate::json::{Scanner, SyntaxError, Value};

/// A field of the catalogue, by its index in `Paths::names`.
pub type FieldId = usize;

use crate::event::InputFormat;

/// The top-level keys every event is read for.
pub const TYPE: &str = "type";
pub const TIMESTAMP: &str = "timestamp";
pub const EVENT_ID: &str = "event_id";
/// A Segment/RudderStack call's event name (of a track call) and its event id.
pub const EVENT_NAME: &str = "event";
pub const MESSAGE_ID: &str = "messageId";
const PROPERTIES: &str = "properties";

struct Node {
    key: String,
    children: Vec<usize>,
    /// The children by key, for nodes with many (the event object's top level).
    by_key: Keys,
    /// The last slot of this node's subtree (slots are numbered in preorder, the node's own first).
    subtree_end: usize,
}

/// The fields a catalogue reads, compiled into a trie of paths.
pub struct Paths {
    nodes: Vec<Node>,
    names: Vec<String>,
    /// Per field: the slot of its path, and for a plain name the slot of `properties.<name>`.
    lookups: Vec<(usize, Option<usize>)>,
    type_slot: usize,
    /// A track call's event name (the Segment format only).
    name_slot: Option<usize>,
    timestamp_slot: usize,
    event_id_slot: usize,
    format: InputFormat,
}

/// The values captured from one event, one per trie node (None: the key is absent).
pub type Captures<'a> = Vec<Option<Value<'a>>>;

/// The captured values of one event, wherever they are held (one slot per trie node).
pub type Captured<'a> = [Option<Value<'a>>];

impl Paths {
    /// Compile the fields (plain or dotted names), in order: a field's id is its position among
    /// the distinct names given.
    pub fn new<'n>(fields: impl IntoIterator<Item = &'n str>) -> Paths {
        Paths::for_format(fields, InputFormat::Nsm)
    }

    /// The same, for messages of an input format (which keys hold the type and the event id).
    pub fn for_format<'n>(fields: impl IntoIterator<Item = &'n str>, format: InputFormat) -> Paths {
        let mut builder = Builder { nodes: vec![BuildNode::default()] };
        let type_node = builder.path(&[TYPE]);
        let name_node = (format == InputFormat::Segment).then(|| builder.path(&[EVENT_NAME]));
        let timestamp_node = builder.path(&[TIMESTAMP]);
        let id_key = if format == InputFormat::Segment { MESSAGE_ID } else { EVENT_ID };
        let event_id_node = builder.path(&[id_key]);
        let mut names: Vec<String> = Vec::new();
        let mut raw_lookups = Vec::new();
        for name in fields {
            if names.iter().any(|n| n == name) {
                continue;
            }
            names.push(name.to_owned());
            if name.contains('.') {
                let parts: Vec<&str> = name.split('.').collect();
                raw_lookups.push((builder.path(&parts), None));
            } else {
                raw_lookups.push((builder.path(&[name]), Some(builder.path(&[PROPERTIES, name]))));
            }
        }
        // Number the nodes in preorder, so that each subtree is a range of slots.
        let mut order = Vec::new();
        builder.preorder(0, &mut order);
        let mut slot_of = vec![0; builder.nodes.len()];
        for (slot, &node) in order.iter().enumerate() {
            slot_of[node] = slot;
        }
        let mut nodes: Vec<Node> = order
            .iter()
            .map(|&n| Node {
                key: builder.nodes[n].key.clone(),
                children: builder.nodes[n].children.iter().map(|c| slot_of[*c]).collect(),
                by_key: Keys::new(
                    builder.nodes[n]
                        .children
                        .iter()
                        .map(|c| (builder.nodes[*c].key.as_bytes(), slot_of[*c])),
                ),
                subtree_end: 0,
            })
            .collect();
        for slot in (0..nodes.len()).rev() {
            let end = nodes[slot].children.iter().map(|c| nodes[*c].subtree_end).max();
            nodes[slot].subtree_end = end.unwrap_or(slot);
        }
        Paths {
            nodes,
            names,
            lookups: raw_lookups
                .into_iter()
                .map(|(p, fallback): (usize, Option<usize>)| {
                    (slot_of[p], fallback.map(|f| slot_of[f]))
                })
                .collect(),
            type_slot: slot_of[type_node],
            name_slot: name_node.map(|n| slot_of[n]),
            timestamp_slot: slot_of[timestamp_node],
            event_id_slot: slot_of[event_id_node],
            format,
        }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn id(&self, name: &str) -> Option<FieldId> {
        self.names.iter().position(|n| n == name)
    }

    pub fn slots(&self) -> usize {
        self.nodes.len()
    }

    /// Decode an event object at the scanner (its `{`): every captured value, the rest checked.
    pub fn capture<'a>(
        &self,
        scanner: &mut Scanner<'a>,
        captures: &mut Captures<'a>,
    ) -> Result<(), SyntaxError> {
        captures.clear();
        captures.resize(self.nodes.len(), None);
        self.members(scanner, 0, 1, captures)
    }

    /// `capture` into `slots()` slots held elsewhere (a block of decoded events).
    pub fn capture_into<'a>(
        &self,
        scanner: &mut Scanner<'a>,
        captures: &mut Captured<'a>,
    ) -> Result<(), SyntaxError> {
        captures.fill(None);
        self.members(scanner, 0, 1, captures)
    }

    /// The members of the object at the scanner, captured under `node`.
    fn members<'a>(
        &self,
        scanner: &mut Scanner<'a>,
        node: usize,
        depth: usize,
        captures: &mut Captured<'a>,
    ) -> Result<(), SyntaxError> {
        scanner.object(depth, |scanner, key, depth| {
            let here = &self.nodes[node];
            let found = if here.children.len() > 4 {
                here.by_key.get(key.as_bytes())
            } else {
                here.children.iter().copied().find(|&c| self.nodes[c].key == key)
            };
            let Some(child) = found else {
                return scanner.skip(depth);
            };
            // A repeated key: its last value wins, and nothing of an earlier one stays below it.
            let end = self.nodes[child].subtree_end;
            for slot in &mut captures[child + 1..=end] {
                *slot = None;
            }
            scanner.ws();
            if !self.nodes[child].children.is_empty() && scanner.peek() == Some(b'{') {
                let start = scanner.position();
                self.members(scanner, child, depth + 1, captures)?;
                captures[child] = Some(Value::Object(scanner.since(start)));
            } else {
                captures[child] = Some(scanner.value(depth)?);
            }
            Ok(())
        })
    }

    /// A field's value in an event (None: missing or null).
    pub fn get<'c, 'a>(&self, captures: &'c Captured<'a>, field: FieldId) -> Option<&'c Value<'a>> {
        let (slot, fallback) = self.lookups[field];
        present(captures[slot].as_ref())
            .or_else(|| fallback.and_then(|f| present(captures[f].as_ref())))
    }

    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// The `type` key (a Segment call's call type).
    pub fn event_type<'c, 'a>(&self, captures: &'c Captured<'a>) -> Option<&'c Value<'a>> {
        captures[self.type_slot].as_ref()
    }

    /// A Segment track call's `event`.
    pub fn event_name<'c, 'a>(&self, captures: &'c Captured<'a>) -> Option<&'c Value<'a>> {
        self.name_slot.and_then(|slot| captures[slot].as_ref())
    }

    pub fn timestamp<'c, 'a>(&self, captures: &'c Captured<'a>) -> Option<&'c Value<'a>> {
        captures[self.timestamp_slot].as_ref()
    }

    pub fn event_id<'c, 'a>(&self, captures: &'c Captured<'a>) -> Option<&'c Value<'a>> {
        present(captures[self.event_id_slot].as_ref())
    }
}

fn present<'c, 'a>(value: Option<&'c Value<'a>>) -> Option<&'c Value<'a>> {
    value.filter(|v| !v.is_null())
}

/// A key as its length and its first and last eight bytes: the whole key when it has at most 16.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Shape {
    len: usize,
    head: u64,
    tail: u64,
}

impl Shape {
    fn of(key: &[u8]) -> Shape {
        let word = |bytes: &[u8]| {
            let mut buffer = [0u8; 8];
            buffer[..bytes.len()].copy_from_slice(bytes);
            u64::from_le_bytes(buffer)
        };
        let len = key.len();
        let head = word(&key[..len.min(8)]);
        let tail = if len > 8 { word(&key[len - 8..]) } else { head };
        Shape { len, head, tail }
    }

    fn hash(&self, bits: u32) -> usize {
        let mixed = (self.head ^ self.tail.rotate_left(29) ^ self.len as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> (64 - bits)) as usize
    }
}

/// A place in `Keys`: a key's shape, its bytes and its child; `None` is an empty place.
type Place = Option<(Shape, Box<[u8]>, usize)>;

/// A small open-addressing table of keys, cheaper than a general map for the short keys of
/// events: a key's shape is compared before (for a long key) its bytes.
#[derive(Default)]
struct Keys {
    bits: u32,
    places: Vec<Place>,
}

impl Keys {
    fn new<'k>(keys: impl Iterator<Item = (&'k [u8], usize)>) -> Keys {
        let keys: Vec<(&[u8], usize)> = keys.collect();
        let bits = (keys.len() * 2).next_power_of_two().trailing_zeros().max(1);
        let mut places = vec![None; 1 << bits];
        let mask = places.len() - 1;
        for (key, child) in keys {
            let shape = Shape::of(key);
            let mut at = shape.hash(bits);
            while places[at].is_some() {
                at = (at + 1) & mask;
            }
            places[at] = Some((shape, key.into(), child));
        }
        Keys { bits, places }
    }

    fn get(&self, key: &[u8]) -> Option<usize> {
        let shape = Shape::of(key);
        let mask = self.places.len() - 1;
        let mut at = shape.hash(self.bits);
        while let Some((candidate, bytes, child)) = &self.places[at] {
            if *candidate == shape && (shape.len <= 16 || **bytes == *key) {
                return Some(*child);
            }
            at = (at + 1) & mask;
        }
        None
    }
}

#[derive(Default)]
struct BuildNode {
    key: String,
    children: Vec<usize>,
}

struct Builder {
    nodes: Vec<BuildNode>,
}

impl Builder {
    fn path(&mut self, parts: &[&str]) -> usize {
        let mut node = 0;
        for part in parts {
            let found =
                self.nodes[node].children.iter().copied().find(|&c| self.nodes[c].key == *part);
            node = match found {
                Some(child) => child,
                None => {
                    self.nodes.push(BuildNode { key: (*part).to_owned(), children: Vec::new() });
                    let child = self.nodes.len() - 1;
                    self.nodes[node].children.push(child);
                    child
                }
            };
        }
        node
    }

    fn preorder(&self, node: usize, order: &mut Vec<usize>) {
        order.push(node);
        for &child in &self.nodes[node].children {
            self.preorder(child, order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    fn read(paths: &Paths, doc: &str, field: &str) -> Option<String> {
        let text = json::text(doc.as_bytes()).unwrap();
        let mut scanner = Scanner::new(text);
        let mut captures = Vec::new();
        scanner.ws();
        paths.capture(&mut scanner, &mut captures).unwrap();
        scanner.end().unwrap();
        paths.get(&captures, paths.id(field).unwrap()).map(|v| format!("{v:?}"))
    }

    #[test]
    fn plain_names_fall_back_to_properties_and_paths_are_literal() {
        let paths = Paths::new(["plan", "properties.plan", "context.region", "properties"]);
        let doc = r#"{"plan": null, "properties": {"plan": "pro"}, "context": {"region": "eu"}}"#;
        assert_eq!(read(&paths, doc, "plan").as_deref(), Some("Str(\"pro\")"));
        assert_eq!(read(&paths, doc, "properties.plan").as_deref(), Some("Str(\"pro\")"));
        assert_eq!(read(&paths, doc, "context.region").as_deref(), Some("Str(\"eu\")"));
        assert!(read(&paths, doc, "properties").unwrap().starts_with("Object"));
        let top = r#"{"plan": "free", "properties": {"plan": "pro"}}"#;
        assert_eq!(read(&paths, top, "plan").as_deref(), Some("Str(\"free\")"));
        let not_object = r#"{"properties": [1], "context": "x"}"#;
        assert_eq!(read(&paths, not_object, "plan"), None);
        assert_eq!(read(&paths, not_object, "context.region"), None);
    }

    #[test]
    fn a_repeated_key_keeps_only_its_last_value() {
        let paths = Paths::new(["plan", "context.region"]);
        let doc = r#"{"properties": {"plan": "pro"}, "properties": {"x": 1},
                      "context": {"region": "eu"}, "context": 5, "pl\u0061n": null}"#;
        assert_eq!(read(&paths, doc, "plan"), None);
        assert_eq!(read(&paths, doc, "context.region"), None);
    }
}
