//! Pattern index: the prefix and wildcard patterns of one table (REGISTER / SUBSCRIBE with
//! `match` = `prefix` or `wildcard`, digest §9.2, §9.3), each with a value, looked up by a
//! concrete URI. It answers two questions: which one pattern a CALL routes to (`best`), and
//! which patterns an EVENT is delivered for (`for_each_match`). Exact matches are not its job:
//! the tables keep those in their own hash maps and look there first.
//!
//! Matching rules:
//! * A prefix pattern matches every URI that starts with it, byte for byte (`com.a.obj1`
//!   matches `com.a.obj1-sub`; the empty prefix matches every URI).
//! * A wildcard pattern matches a URI with as many components (split at `.`) whose components
//!   equal the pattern's, except where the pattern's component is empty: that position matches
//!   any one component (`com..update` matches `com.x.update`, not `com.x.y.update`).
//!
//! `best` follows the RPC precedence: the prefix pattern with the longest match (in bytes, as
//! digest §13 item 9 advises), else the wildcard pattern that, compared with every other
//! matching one from the left, has a concrete component at the first position where the two
//! differ. That is the spec's "longest leading concrete run wins, ties broken by the next run".
//!
//! Cost: prefixes live in a radix trie over bytes, walked once along the URI. Wildcard patterns
//! are grouped by component count, each group a trie over components (a hash map of concrete
//! children and one wildcard child per node), searched depth first with the concrete child
//! before the wildcard one, so the first match found is the best and no node is visited twice.
//! Lookups of URIs of up to 31 components do not allocate (the search's stack is inline; longer
//! URIs spill it to the heap). Nothing recurses, dropping included, so no input depth can
//! exhaust the stack. Removing a pattern prunes the nodes that no longer lead to one, so an
//! index that held many patterns and lost them gives its memory back.

use std::fmt;
use std::mem;

use super::{fast_map, is_sparse, FastMap};

/// Whether the one pattern `pattern` of policy `matching` covers `uri`, by the rules above
/// (for scanning a few stored URIs against one pattern; the index answers the other way round).
pub(crate) fn matches_pattern(
    pattern: &str,
    matching: super::dealer::MatchPolicy,
    uri: &str,
) -> bool {
    use super::dealer::MatchPolicy;
    match matching {
        MatchPolicy::Exact => pattern == uri,
        MatchPolicy::Prefix => uri.starts_with(pattern),
        MatchPolicy::Wildcard => {
            let mut wanted = pattern.split('.');
            let mut parts = uri.split('.');
            loop {
                match (wanted.next(), parts.next()) {
                    (None, None) => return true,
                    (Some(want), Some(part)) if want.is_empty() || want == part => {}
                    _ => return false,
                }
            }
        }
    }
}

/// Which kind of pattern a lookup matched.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PatternKind {
    Prefix,
    Wildcard,
}

/// Prefix and wildcard patterns, each with a value (a registration or subscription id, an
/// index into the caller's table). The same string may be held once as each kind.
pub struct PatternIndex<T> {
    /// The radix trie's root: its key is the empty prefix.
    prefixes: PrefixNode<T>,
    prefix_len: usize,
    /// One component trie per component count; a group is removed with its last pattern.
    wildcards_by_count: FastMap<usize, WildcardNode<T>>,
    wildcard_len: usize,
}

impl<T: Copy> Default for PatternIndex<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for PatternIndex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatternIndex")
            .field("prefixes", &self.prefix_len)
            .field("wildcards", &self.wildcard_len)
            .finish()
    }
}

impl<T: Copy> PatternIndex<T> {
    pub fn new() -> Self {
        PatternIndex {
            prefixes: PrefixNode::new(&[], None),
            prefix_len: 0,
            wildcards_by_count: fast_map(),
            wildcard_len: 0,
        }
    }

    /// Patterns held, of both kinds.
    pub fn len(&self) -> usize {
        self.prefix_len + self.wildcard_len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds prefix pattern `prefix`, or replaces its value; returns the value replaced.
    pub fn insert_prefix(&mut self, prefix: &str, value: T) -> Option<T> {
        let old = self.prefixes.insert(prefix.as_bytes(), value);
        if old.is_none() {
            self.prefix_len += 1;
        }
        old
    }

    /// Removes prefix pattern `prefix`; returns its value, `None` if it was not held.
    pub fn remove_prefix(&mut self, prefix: &str) -> Option<T> {
        let old = self.prefixes.remove(prefix.as_bytes());
        if old.is_some() {
            self.prefix_len -= 1;
        }
        old
    }

    /// Adds wildcard pattern `pattern` (empty components are wildcards), or replaces its
    /// value; returns the value replaced.
    pub fn insert_wildcard(&mut self, pattern: &str, value: T) -> Option<T> {
        let mut node = self
            .wildcards_by_count
            .entry(component_count(pattern))
            .or_insert_with(WildcardNode::new);
        for component in pattern.split('.') {
            node = node.child_or_insert(component);
        }
        let old = node.value.replace(value);
        if old.is_none() {
            self.wildcard_len += 1;
        }
        old
    }

    /// Removes wildcard pattern `pattern`; returns its value, `None` if it was not held.
    pub fn remove_wildcard(&mut self, pattern: &str) -> Option<T> {
        let count = component_count(pattern);
        // First find the value and the deepest node on the path that must stay because
        // another pattern goes through it; everything below it on the path leads only to this
        // pattern and goes with it. Values sit only at depth `count`, so a node on the path
        // stays exactly when it has another child.
        let mut node = self.wildcards_by_count.get(&count)?;
        let mut keep_depth = None;
        for (depth, component) in pattern.split('.').enumerate() {
            if node.child_count() > 1 {
                keep_depth = Some(depth);
            }
            node = node.child(component)?;
        }
        let value = node.value?;
        debug_assert_eq!(node.child_count(), 0, "wildcard values sit at leaves");
        match keep_depth {
            None => {
                self.wildcards_by_count.remove(&count);
            }
            Some(depth) => {
                let mut components = pattern.split('.');
                let mut node = self.wildcards_by_count.get_mut(&count)?;
                for component in components.by_ref().take(depth) {
                    node = node.child_mut(component)?;
                }
                node.remove_child(components.next()?);
            }
        }
        self.wildcard_len -= 1;
        Some(value)
    }

    /// The value of prefix pattern `prefix` itself (not of what matches it).
    pub fn get_prefix(&self, prefix: &str) -> Option<T> {
        self.prefixes.get(prefix.as_bytes())
    }

    /// The value of wildcard pattern `pattern` itself (not of what matches it).
    pub fn get_wildcard(&self, pattern: &str) -> Option<T> {
        let mut node = self.wildcards_by_count.get(&component_count(pattern))?;
        for component in pattern.split('.') {
            node = node.child(component)?;
        }
        node.value
    }

    /// The one pattern a CALL to `uri` routes to (module doc: longest prefix, else the most
    /// specific wildcard pattern).
    pub fn best(&self, uri: &str) -> Option<(T, PatternKind)> {
        let mut longest = None;
        self.prefixes
            .walk(uri.as_bytes(), |value| longest = Some(value));
        if let Some(value) = longest {
            return Some((value, PatternKind::Prefix));
        }
        let mut best = None;
        self.walk_wildcards(uri, |value| {
            best = Some(value);
            false
        });
        best.map(|value| (value, PatternKind::Wildcard))
    }

    /// Calls `f` once with the value of every pattern matching `uri`: the prefix patterns from
    /// the shortest, then the wildcard patterns from the most specific.
    pub fn for_each_match(&self, uri: &str, mut f: impl FnMut(T)) {
        self.prefixes.walk(uri.as_bytes(), &mut f);
        self.walk_wildcards(uri, |value| {
            f(value);
            true
        });
    }

    /// Trie nodes held, the prefix trie's root not counted: zero when the index is empty
    /// (O(nodes), for tests and diagnostics).
    pub fn node_count(&self) -> usize {
        let mut count = 0;
        let mut prefix_nodes: Vec<&PrefixNode<T>> = self.prefixes.children.iter().collect();
        while let Some(node) = prefix_nodes.pop() {
            count += 1;
            prefix_nodes.extend(node.children.iter());
        }
        let mut wildcard_nodes: Vec<&WildcardNode<T>> = self.wildcards_by_count.values().collect();
        while let Some(node) = wildcard_nodes.pop() {
            count += 1;
            wildcard_nodes.extend(node.concrete.values());
            wildcard_nodes.extend(node.any.as_deref());
        }
        count
    }

    /// Depth-first search of the wildcard patterns with `uri`'s component count: at each node
    /// the concrete child before the wildcard child, so values come most specific first. Stops
    /// when `f` returns false.
    fn walk_wildcards(&self, uri: &str, mut f: impl FnMut(T) -> bool) {
        if self.wildcards_by_count.is_empty() {
            return;
        }
        let Some(root) = self.wildcards_by_count.get(&component_count(uri)) else {
            return;
        };
        let mut pending = VisitStack::new(Visit {
            node: root,
            rest: Some(uri),
        });
        while let Some(Visit { node, rest }) = pending.pop() {
            let Some(rest) = rest else {
                if let Some(value) = node.value {
                    if !f(value) {
                        return;
                    }
                }
                continue;
            };
            let (component, tail) = match rest.split_once('.') {
                Some((component, tail)) => (component, Some(tail)),
                None => (rest, None),
            };
            // Pushed last, popped first: the concrete subtree is searched before the wildcard's.
            if let Some(any) = node.any.as_deref() {
                pending.push(Visit {
                    node: any,
                    rest: tail,
                });
            }
            if let Some(child) = node.concrete.get(component) {
                pending.push(Visit {
                    node: child,
                    rest: tail,
                });
            }
        }
    }
}

/// Components of `uri` when split at `.` (one more than its dots).
fn component_count(uri: &str) -> usize {
    uri.bytes().filter(|&byte| byte == b'.').count() + 1
}

/// A radix-trie node. Its key is the concatenation of the labels from the root down; `label`
/// is empty only at the root. Every node other than the root holds a value or has two
/// children or more (removal merges a node left with one child and no value into that child).
struct PrefixNode<T> {
    label: Box<[u8]>,
    value: Option<T>,
    /// Sorted by the first byte of their labels, which differ.
    children: Vec<PrefixNode<T>>,
}

impl<T: Copy> PrefixNode<T> {
    fn new(label: &[u8], value: Option<T>) -> Self {
        PrefixNode {
            label: label.into(),
            value,
            children: Vec::new(),
        }
    }

    fn child_index(&self, first_byte: u8) -> Result<usize, usize> {
        self.children
            .binary_search_by_key(&Some(first_byte), |child| child.label.first().copied())
    }

    fn child(&self, first_byte: u8) -> Option<&PrefixNode<T>> {
        let index = self.child_index(first_byte).ok()?;
        self.children.get(index)
    }

    /// The value stored under exactly `key`.
    fn get(&self, key: &[u8]) -> Option<T> {
        let mut node = self;
        let mut rest = key;
        while let Some(&first) = rest.first() {
            let child = node.child(first)?;
            rest = rest.strip_prefix(&child.label[..])?;
            node = child;
        }
        node.value
    }

    /// Calls `f` with the value of every node whose key is a prefix of `key`, shortest first.
    fn walk(&self, key: &[u8], mut f: impl FnMut(T)) {
        if let Some(value) = self.value {
            f(value);
        }
        let mut node = self;
        let mut rest = key;
        while let Some(&first) = rest.first() {
            let Some(child) = node.child(first) else {
                return;
            };
            let Some(tail) = rest.strip_prefix(&child.label[..]) else {
                return;
            };
            if let Some(value) = child.value {
                f(value);
            }
            node = child;
            rest = tail;
        }
    }

    fn insert(&mut self, key: &[u8], value: T) -> Option<T> {
        let mut node = self;
        let mut rest = key;
        loop {
            let Some(&first) = rest.first() else {
                return node.value.replace(value);
            };
            let index = match node.child_index(first) {
                Ok(index) => index,
                Err(index) => {
                    node.children
                        .insert(index, PrefixNode::new(rest, Some(value)));
                    return None;
                }
            };
            let child = &mut node.children[index];
            // At least 1: the first bytes are equal.
            let common = common_prefix_len(&child.label, rest);
            if common < child.label.len() {
                child.split(common);
            }
            rest = &rest[common..];
            node = child;
        }
    }

    fn remove(&mut self, key: &[u8]) -> Option<T> {
        if key.is_empty() {
            return self.value.take();
        }
        let mut parent = self;
        let mut parent_is_root = true;
        let mut rest = key;
        loop {
            let index = parent.child_index(*rest.first()?).ok()?;
            let label = &parent.children[index].label;
            if !rest.starts_with(label) {
                return None;
            }
            if label.len() < rest.len() {
                rest = &rest[label.len()..];
                parent = &mut parent.children[index];
                parent_is_root = false;
                continue;
            }
            let node = &mut parent.children[index];
            let value = node.value.take()?;
            match node.children.len() {
                0 => {
                    parent.children.remove(index);
                    if !parent_is_root && parent.value.is_none() && parent.children.len() == 1 {
                        parent.absorb_only_child();
                    }
                }
                1 => node.absorb_only_child(),
                _ => {}
            }
            return Some(value);
        }
    }

    /// Cuts this node's edge after `at` bytes (0 < `at` < label length): this node keeps the
    /// head of the label and gets one child with the tail, its value and its children.
    fn split(&mut self, at: usize) {
        let tail = PrefixNode {
            label: self.label[at..].into(),
            value: self.value.take(),
            children: mem::take(&mut self.children),
        };
        self.label = self.label[..at].into();
        self.children = vec![tail];
    }

    /// Merges the only child into this node, which holds no value (undoes `split`).
    fn absorb_only_child(&mut self) {
        debug_assert!(self.value.is_none() && self.children.len() == 1);
        let Some(mut child) = self.children.pop() else {
            return;
        };
        let mut label = Vec::with_capacity(self.label.len() + child.label.len());
        label.extend_from_slice(&self.label);
        label.extend_from_slice(&child.label);
        self.label = label.into_boxed_slice();
        self.value = child.value.take();
        self.children = mem::take(&mut child.children);
    }
}

/// Iterative, so that dropping a deep trie cannot exhaust the stack.
impl<T> Drop for PrefixNode<T> {
    fn drop(&mut self) {
        let mut doomed = mem::take(&mut self.children);
        while let Some(mut node) = doomed.pop() {
            doomed.append(&mut node.children);
        }
    }
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A node of a wildcard group's trie: depth `d` stands for the pattern's component `d`
/// (concrete, or the wildcard), and values sit at depth = the group's component count.
struct WildcardNode<T> {
    value: Option<T>,
    /// Never has the empty component as a key: that is `any`.
    concrete: FastMap<Box<str>, WildcardNode<T>>,
    any: Option<Box<WildcardNode<T>>>,
}

impl<T> WildcardNode<T> {
    fn new() -> Self {
        WildcardNode {
            value: None,
            concrete: fast_map(),
            any: None,
        }
    }

    fn child_count(&self) -> usize {
        self.concrete.len() + usize::from(self.any.is_some())
    }

    /// The child standing for pattern component `component` (empty: the wildcard).
    fn child(&self, component: &str) -> Option<&WildcardNode<T>> {
        if component.is_empty() {
            self.any.as_deref()
        } else {
            self.concrete.get(component)
        }
    }

    fn child_mut(&mut self, component: &str) -> Option<&mut WildcardNode<T>> {
        if component.is_empty() {
            self.any.as_deref_mut()
        } else {
            self.concrete.get_mut(component)
        }
    }

    fn child_or_insert(&mut self, component: &str) -> &mut WildcardNode<T> {
        if component.is_empty() {
            self.any
                .get_or_insert_with(|| Box::new(WildcardNode::new()))
        } else {
            self.concrete
                .entry(component.into())
                .or_insert_with(WildcardNode::new)
        }
    }

    fn remove_child(&mut self, component: &str) {
        if component.is_empty() {
            self.any = None;
        } else {
            self.concrete.remove(component);
            if is_sparse(self.concrete.len(), self.concrete.capacity()) {
                self.concrete.shrink_to(self.concrete.len() * 2);
            }
        }
    }
}

/// Iterative, so that dropping a pattern with very many components cannot exhaust the stack.
impl<T> Drop for WildcardNode<T> {
    fn drop(&mut self) {
        let mut doomed: Vec<WildcardNode<T>> = Vec::new();
        doomed.extend(self.concrete.drain().map(|(_, child)| child));
        doomed.extend(self.any.take().map(|child| *child));
        while let Some(mut node) = doomed.pop() {
            doomed.extend(node.concrete.drain().map(|(_, child)| child));
            doomed.extend(node.any.take().map(|child| *child));
        }
    }
}

/// A wildcard trie node still to search, with the URI components it must still match
/// (`None`: all of them matched).
struct Visit<'a, T> {
    node: &'a WildcardNode<T>,
    rest: Option<&'a str>,
}

impl<T> Clone for Visit<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Visit<'_, T> {}

/// Visits pending in the depth-first search: at most one per trie level plus one, so URIs of
/// up to `INLINE_VISITS - 1` components need no heap.
const INLINE_VISITS: usize = 32;

struct VisitStack<'a, T> {
    inline: [Visit<'a, T>; INLINE_VISITS],
    len: usize,
    spilled: Vec<Visit<'a, T>>,
}

impl<'a, T> VisitStack<'a, T> {
    fn new(first: Visit<'a, T>) -> Self {
        VisitStack {
            inline: [first; INLINE_VISITS],
            len: 1,
            spilled: Vec::new(),
        }
    }

    fn push(&mut self, visit: Visit<'a, T>) {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = visit,
            None => self.spilled.push(visit),
        }
        self.len += 1;
    }

    fn pop(&mut self) -> Option<Visit<'a, T>> {
        self.len = self.len.checked_sub(1)?;
        match self.inline.get(self.len) {
            Some(visit) => Some(*visit),
            None => self.spilled.pop(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_pattern_matches_as_the_index_does() {
        use crate::router::dealer::MatchPolicy;
        let cases = [
            ("com.a", MatchPolicy::Prefix, "com.ab", true),
            ("com.a", MatchPolicy::Prefix, "com.a", true),
            ("com.a", MatchPolicy::Prefix, "com.", false),
            ("com..b", MatchPolicy::Wildcard, "com.x.b", true),
            ("com..b", MatchPolicy::Wildcard, "com.x.y.b", false),
            ("com..b", MatchPolicy::Wildcard, "com.x", false),
            ("com.", MatchPolicy::Wildcard, "com.x", true),
            ("com.x", MatchPolicy::Exact, "com.x", true),
            ("com.x", MatchPolicy::Exact, "com.xy", false),
        ];
        for (pattern, matching, uri, expected) in cases {
            assert_eq!(
                matches_pattern(pattern, matching, uri),
                expected,
                "{pattern:?} {matching:?} {uri:?}"
            );
            let mut index = PatternIndex::new();
            match matching {
                MatchPolicy::Prefix => {
                    index.insert_prefix(pattern, 1u32);
                }
                MatchPolicy::Wildcard => {
                    index.insert_wildcard(pattern, 1u32);
                }
                MatchPolicy::Exact => continue,
            }
            let mut found = false;
            index.for_each_match(uri, |_| found = true);
            assert_eq!(found, expected, "the index agrees on {pattern:?} {uri:?}");
        }
    }

    use super::*;

    use PatternKind::{Prefix, Wildcard};

    fn matches(index: &PatternIndex<u32>, uri: &str) -> Vec<u32> {
        let mut values = Vec::new();
        index.for_each_match(uri, |value| values.push(value));
        values.sort_unstable();
        values
    }

    #[test]
    fn get_finds_a_pattern_itself_not_what_it_matches() {
        let mut index = PatternIndex::new();
        index.insert_prefix("com.a", 1);
        index.insert_prefix("com.abc", 2);
        index.insert_wildcard("com..x", 3);
        assert_eq!(index.get_prefix("com.a"), Some(1));
        assert_eq!(index.get_prefix("com.abc"), Some(2));
        assert_eq!(
            index.get_prefix("com.ab"),
            None,
            "an inner radix split holds no value"
        );
        assert_eq!(index.get_prefix("com.a.b"), None);
        assert_eq!(index.get_wildcard("com..x"), Some(3));
        assert_eq!(index.get_wildcard("com.y.x"), None);
        assert_eq!(index.get_wildcard("com..x."), None);
    }

    #[test]
    fn spec_prefix_examples() {
        let mut index = PatternIndex::new();
        index.insert_prefix("com.myapp.myobject1", 1);
        for uri in [
            "com.myapp.myobject1.myprocedure1",
            "com.myapp.myobject1-mysubobject1",
            "com.myapp.myobject1.mysubobject1.myprocedure1",
            "com.myapp.myobject1",
        ] {
            assert_eq!(index.best(uri), Some((1, Prefix)), "{uri}");
        }
        for uri in ["com.myapp.myobject2", "com.myapp.myobject"] {
            assert_eq!(index.best(uri), None, "{uri}");
        }

        let mut index = PatternIndex::new();
        index.insert_prefix("com.myapp.topic.emergency", 1);
        for uri in [
            "com.myapp.topic.emergency.11",
            "com.myapp.topic.emergency-low",
            "com.myapp.topic.emergency.category.severe",
            "com.myapp.topic.emergency",
        ] {
            assert_eq!(matches(&index, uri), [1], "{uri}");
        }
        assert_eq!(matches(&index, "com.myapp.topic.emerge"), [] as [u32; 0]);
    }

    #[test]
    fn spec_wildcard_examples() {
        let mut index = PatternIndex::new();
        index.insert_wildcard("com.myapp..myprocedure1", 1);
        for uri in [
            "com.myapp.myobject1.myprocedure1",
            "com.myapp.myobject2.myprocedure1",
        ] {
            assert_eq!(index.best(uri), Some((1, Wildcard)), "{uri}");
        }
        for uri in [
            "com.myapp.myobject1.myprocedure1.mysubprocedure1",
            "com.myapp.myobject1.myprocedure2",
            "com.myapp2.myobject1.myprocedure1",
        ] {
            assert_eq!(index.best(uri), None, "{uri}");
        }

        let mut index = PatternIndex::new();
        index.insert_wildcard("com.myapp..userevent", 1);
        for uri in [
            "com.myapp.foo.userevent",
            "com.myapp.bar.userevent",
            "com.myapp.a12.userevent",
        ] {
            assert_eq!(matches(&index, uri), [1], "{uri}");
        }
        for uri in [
            "com.myapp.foo.userevent.bar",
            "com.myapp.foo.user",
            "com.myapp2.foo.userevent",
        ] {
            assert_eq!(matches(&index, uri), [] as [u32; 0], "{uri}");
        }
    }

    #[test]
    fn wildcard_needs_the_same_component_count() {
        let mut index = PatternIndex::new();
        index.insert_wildcard("com..update", 1);
        assert_eq!(index.best("com.x.update"), Some((1, Wildcard)));
        assert_eq!(index.best("com.x.y.update"), None);
        assert_eq!(index.best("com.update"), None);
        assert_eq!(index.best("com..update"), Some((1, Wildcard)));
    }

    /// The spec's precedence example (registration 1, the exact one, is the caller's business).
    #[test]
    fn spec_precedence_example() {
        let wildcards = [
            ("a1.b2..d4.e5", 4),
            ("a1.b2.c3..e5", 5),
            ("a1.b2..d4.e5..g7", 6),
            ("a1.b2..d4..f6.g7", 7),
        ];
        let mut index = PatternIndex::new();
        index.insert_prefix("a1.b2.c3", 2);
        index.insert_prefix("a1.b2.c3.d4", 3);
        for (pattern, value) in wildcards {
            index.insert_wildcard(pattern, value);
        }
        assert_eq!(index.best("a1.b2.c3.d98.e74"), Some((2, Prefix)));
        assert_eq!(index.best("a1.b2.c3.d4.e325"), Some((3, Prefix)));
        assert_eq!(index.best("a1.b2.c55.d4.e5"), Some((4, Wildcard)));
        assert_eq!(index.best("a1.b2.c88.d4.e5.f6.g7"), Some((6, Wildcard)));
        assert_eq!(index.best("a2.b2.c2.d2.e2"), None);
        // The spec lists this one as "no prefix match" although `a1.b2.c3.d4` is a string
        // prefix of it; by the prefix rule of the same section, the prefix wins.
        assert_eq!(index.best("a1.b2.c3.d4.e5"), Some((3, Prefix)));

        let mut index = PatternIndex::new();
        for (pattern, value) in wildcards {
            index.insert_wildcard(pattern, value);
        }
        assert_eq!(index.best("a1.b2.c3.d4.e5"), Some((5, Wildcard)));
        assert_eq!(matches(&index, "a1.b2.c3.d4.e5"), [4, 5]);
        assert_eq!(matches(&index, "a1.b2.c88.d4.e5.f6.g7"), [6, 7]);
    }

    #[test]
    fn longest_prefix_wins() {
        let mut index = PatternIndex::new();
        index.insert_prefix("com", 1);
        index.insert_prefix("com.a", 2);
        index.insert_prefix("com.a.obj1", 3);
        index.insert_prefix("com.a.obj", 4);
        assert_eq!(index.best("com.a.obj1-sub"), Some((3, Prefix)));
        assert_eq!(index.best("com.a.obj2"), Some((4, Prefix)));
        assert_eq!(index.best("com.a.o"), Some((2, Prefix)));
        assert_eq!(index.best("com.b"), Some((1, Prefix)));
        assert_eq!(index.best("co"), None);
        assert_eq!(index.best("org"), None);
        assert_eq!(matches(&index, "com.a.obj1.x"), [1, 2, 3, 4]);

        // The empty prefix matches everything, and loses to any longer one.
        index.insert_prefix("", 5);
        assert_eq!(index.best("org"), Some((5, Prefix)));
        assert_eq!(index.best(""), Some((5, Prefix)));
        assert_eq!(index.best("com.b"), Some((1, Prefix)));
        assert_eq!(matches(&index, "com.a"), [1, 2, 5]);
    }

    #[test]
    fn prefix_beats_wildcard() {
        let mut index = PatternIndex::new();
        index.insert_wildcard("com.a.b", 1);
        index.insert_prefix("c", 2);
        assert_eq!(index.best("com.a.b"), Some((2, Prefix)));
        assert_eq!(matches(&index, "com.a.b"), [1, 2]);
    }

    #[test]
    fn concrete_beats_wildcard_at_the_first_difference() {
        let mut index = PatternIndex::new();
        index.insert_wildcard("a..c.d", 1);
        index.insert_wildcard("a.b..", 2);
        assert_eq!(index.best("a.b.c.d"), Some((2, Wildcard)));
        assert_eq!(index.best("a.x.c.d"), Some((1, Wildcard)));
        assert_eq!(index.best("a.b.x.y"), Some((2, Wildcard)));

        // A concrete component early outweighs any number of them later.
        let mut index = PatternIndex::new();
        index.insert_wildcard("...d", 1);
        index.insert_wildcard("..c.", 2);
        index.insert_wildcard(".b.c.d", 3);
        index.insert_wildcard("a...", 4);
        assert_eq!(index.best("a.b.c.d"), Some((4, Wildcard)));
        assert_eq!(index.best("x.b.c.d"), Some((3, Wildcard)));
        assert_eq!(index.best("x.y.c.d"), Some((2, Wildcard)));
        assert_eq!(index.best("x.y.z.d"), Some((1, Wildcard)));
        assert_eq!(index.best("x.y.z.w"), None);
        assert_eq!(matches(&index, "a.b.c.d"), [1, 2, 3, 4]);

        // Equal leading runs: the next run decides.
        let mut index = PatternIndex::new();
        index.insert_wildcard("a.b..d..f", 1);
        index.insert_wildcard("a.b..d.e.", 2);
        index.insert_wildcard("a.b...e.f", 3);
        assert_eq!(index.best("a.b.c.d.e.f"), Some((2, Wildcard)));
        index.remove_wildcard("a.b..d.e.");
        assert_eq!(index.best("a.b.c.d.e.f"), Some((1, Wildcard)));
        index.remove_wildcard("a.b..d..f");
        assert_eq!(index.best("a.b.c.d.e.f"), Some((3, Wildcard)));
    }

    #[test]
    fn insert_replaces_and_remove_returns() {
        let mut index = PatternIndex::new();
        assert_eq!(index.insert_prefix("com.a", 1), None);
        assert_eq!(index.insert_prefix("com.a", 2), Some(1));
        assert_eq!(index.insert_wildcard("com.a", 3), None);
        assert_eq!(index.insert_wildcard("com.a", 4), Some(3));
        assert_eq!(index.len(), 2);
        assert_eq!(matches(&index, "com.a"), [2, 4]);

        assert_eq!(index.remove_prefix("com.b"), None);
        assert_eq!(index.remove_prefix("com"), None);
        assert_eq!(index.remove_prefix("com.a.x"), None);
        assert_eq!(index.remove_wildcard("com.b"), None);
        assert_eq!(index.remove_wildcard("com."), None);
        assert_eq!(index.remove_wildcard("com.a.x"), None);
        assert_eq!(index.len(), 2);

        assert_eq!(index.remove_prefix("com.a"), Some(2));
        assert_eq!(index.remove_prefix("com.a"), None);
        assert_eq!(index.best("com.a"), Some((4, Wildcard)));
        assert_eq!(index.remove_wildcard("com.a"), Some(4));
        assert_eq!(index.remove_wildcard("com.a"), None);
        assert!(index.is_empty());
        assert_eq!(index.best("com.a"), None);
    }

    #[test]
    fn removal_prunes_and_merges() {
        let mut index = PatternIndex::new();
        index.insert_prefix("abc", 1);
        index.insert_prefix("abd", 2);
        // "ab" (no value) with children "c" and "d".
        assert_eq!(index.node_count(), 3);
        index.insert_prefix("ab", 3);
        assert_eq!(index.node_count(), 3);
        index.insert_prefix("a", 4);
        // "a" -> "b" -> "c", "d".
        assert_eq!(index.node_count(), 4);
        index.remove_prefix("abc");
        // "a" -> "b" -> "d": "b" keeps its value, nothing merges.
        assert_eq!(index.node_count(), 3);
        index.remove_prefix("ab");
        // "a" -> "bd".
        assert_eq!(index.node_count(), 2);
        assert_eq!(index.best("abdx"), Some((2, Prefix)));
        assert_eq!(index.best("abx"), Some((4, Prefix)));
        index.remove_prefix("a");
        assert_eq!(index.node_count(), 1);
        assert_eq!(index.best("abd"), Some((2, Prefix)));
        assert_eq!(index.best("ab"), None);
        index.remove_prefix("abd");
        assert_eq!(index.node_count(), 0);

        index.insert_wildcard("a.b.c", 1);
        index.insert_wildcard("a..d", 2);
        index.insert_wildcard("x", 3);
        // count 3: root, a, b, c, any, d; count 1: root, x.
        assert_eq!(index.node_count(), 8);
        index.remove_wildcard("a.b.c");
        assert_eq!(index.node_count(), 6);
        index.remove_wildcard("x");
        assert_eq!(index.node_count(), 4);
        assert_eq!(index.best("a.q.d"), Some((2, Wildcard)));
        index.remove_wildcard("a..d");
        assert_eq!(index.node_count(), 0);
        assert!(index.is_empty());
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let long_dots = ".".repeat(1023);
        let long_bytes = "é".repeat(512);
        let many_components = vec!["ab"; 341].join(".");
        let inputs = [
            "",
            ".",
            "..",
            "a.",
            ".a",
            "a..",
            "ñ.é..ü",
            "é",
            "\u{e9}\u{301}",
            long_dots.as_str(),
            long_bytes.as_str(),
            many_components.as_str(),
        ];
        let mut index = PatternIndex::new();
        for (value, input) in (0u32..).zip(inputs) {
            assert_eq!(index.insert_prefix(input, value), None);
            assert_eq!(index.insert_wildcard(input, value), None);
        }
        for uri in inputs {
            assert!(index.best(uri).is_some(), "{uri:?}");
            // The empty prefix matches every input.
            let prefixes = inputs.iter().filter(|p| uri.starts_with(*p)).count();
            let wildcards = inputs.iter().filter(|p| wildcard_matches(p, uri)).count();
            assert_eq!(matches(&index, uri).len(), prefixes + wildcards, "{uri:?}");
        }
        // 1023 dots: 1024 empty components, so the search spills past its inline stack, and
        // the wildcard pattern of 1024 wildcards matches.
        let dots = long_dots.as_str();
        assert_eq!(index.best(dots), Some((9, Prefix)));
        assert_eq!(index.remove_prefix(dots), Some(9));
        assert_eq!(index.best(dots), Some((2, Prefix)));
        for prefix in ["", ".", ".."] {
            index.remove_prefix(prefix);
        }
        assert_eq!(index.best(dots), Some((9, Wildcard)));
        for input in inputs {
            index.remove_prefix(input);
            index.remove_wildcard(input);
        }
        assert!(index.is_empty());
        assert_eq!(index.node_count(), 0);
    }

    /// Every case below, checked against `wildcard_matches` and `str::starts_with`.
    #[test]
    fn agrees_with_brute_force() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0;
        for _round in 0..200 {
            let mut index = PatternIndex::new();
            let mut prefixes: Vec<(String, u32)> = Vec::new();
            let mut wildcards: Vec<(String, u32)> = Vec::new();
            let mut next_value = 0u32;
            for _step in 0..60 {
                next_value += 1;
                match rng.below(6) {
                    0 | 1 => {
                        let prefix = random_prefix(&mut rng);
                        let old = index.insert_prefix(&prefix, next_value);
                        assert_eq!(old, upsert(&mut prefixes, prefix, next_value));
                    }
                    2 | 3 => {
                        let pattern = random_uri(&mut rng, true);
                        let old = index.insert_wildcard(&pattern, next_value);
                        assert_eq!(old, upsert(&mut wildcards, pattern, next_value));
                    }
                    4 => {
                        let prefix = pick_or_random(&mut rng, &prefixes, random_prefix);
                        let expected = take(&mut prefixes, &prefix);
                        assert_eq!(index.remove_prefix(&prefix), expected, "{prefix:?}");
                    }
                    _ => {
                        let pattern =
                            pick_or_random(&mut rng, &wildcards, |rng| random_uri(rng, true));
                        let expected = take(&mut wildcards, &pattern);
                        assert_eq!(index.remove_wildcard(&pattern), expected, "{pattern:?}");
                    }
                }
                assert_eq!(index.len(), prefixes.len() + wildcards.len());
                assert_invariants(&index);
                for _query in 0..10 {
                    let with_empty_components = rng.below(8) == 0;
                    let uri = random_uri(&mut rng, with_empty_components);
                    assert_eq!(
                        index.best(&uri),
                        brute_best(&prefixes, &wildcards, &uri),
                        "best({uri:?}) in {prefixes:?} {wildcards:?}"
                    );
                    let mut expected: Vec<u32> = prefixes
                        .iter()
                        .filter(|(p, _)| uri.starts_with(p.as_str()))
                        .chain(wildcards.iter().filter(|(p, _)| wildcard_matches(p, &uri)))
                        .map(|&(_, value)| value)
                        .collect();
                    expected.sort_unstable();
                    assert_eq!(matches(&index, &uri), expected, "for_each_match({uri:?})");
                    checked += 1;
                }
            }
            for (prefix, value) in prefixes.drain(..) {
                assert_eq!(index.remove_prefix(&prefix), Some(value));
            }
            for (pattern, value) in wildcards.drain(..) {
                assert_eq!(index.remove_wildcard(&pattern), Some(value));
            }
            assert!(index.is_empty());
            assert_eq!(index.node_count(), 0);
        }
        assert_eq!(checked, 120_000);
    }

    /// The shape removal must keep: no dead or uncompressed nodes.
    fn assert_invariants(index: &PatternIndex<u32>) {
        let mut prefix_nodes: Vec<&PrefixNode<u32>> = index.prefixes.children.iter().collect();
        assert!(index.prefixes.label.is_empty());
        while let Some(node) = prefix_nodes.pop() {
            assert!(!node.label.is_empty());
            assert!(node.value.is_some() || node.children.len() >= 2);
            let first_bytes: Vec<u8> = node.children.iter().map(|c| c.label[0]).collect();
            assert!(first_bytes.windows(2).all(|pair| pair[0] < pair[1]));
            prefix_nodes.extend(node.children.iter());
        }
        for (&count, root) in &index.wildcards_by_count {
            let mut nodes = vec![(root, 0)];
            while let Some((node, depth)) = nodes.pop() {
                assert!(!node.concrete.contains_key(""));
                if depth == count {
                    assert!(node.value.is_some() && node.child_count() == 0);
                } else {
                    assert!(node.value.is_none() && node.child_count() > 0);
                }
                nodes.extend(node.concrete.values().map(|child| (child, depth + 1)));
                nodes.extend(node.any.as_deref().map(|child| (child, depth + 1)));
            }
        }
    }

    fn wildcard_matches(pattern: &str, uri: &str) -> bool {
        component_count(pattern) == component_count(uri)
            && pattern
                .split('.')
                .zip(uri.split('.'))
                .all(|(p, u)| p.is_empty() || p == u)
    }

    fn brute_best(
        prefixes: &[(String, u32)],
        wildcards: &[(String, u32)],
        uri: &str,
    ) -> Option<(u32, PatternKind)> {
        let longest = prefixes
            .iter()
            .filter(|(p, _)| uri.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len());
        if let Some(&(_, value)) = longest {
            return Some((value, Prefix));
        }
        // Concrete (true) beats wildcard (false) at the first difference: lexicographic order.
        wildcards
            .iter()
            .filter(|(p, _)| wildcard_matches(p, uri))
            .max_by_key(|(p, _)| p.split('.').map(|c| !c.is_empty()).collect::<Vec<_>>())
            .map(|&(_, value)| (value, Wildcard))
    }

    fn upsert(entries: &mut Vec<(String, u32)>, key: String, value: u32) -> Option<u32> {
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => Some(mem::replace(old, value)),
            None => {
                entries.push((key, value));
                None
            }
        }
    }

    fn take(entries: &mut Vec<(String, u32)>, key: &str) -> Option<u32> {
        let position = entries.iter().position(|(k, _)| k == key)?;
        Some(entries.swap_remove(position).1)
    }

    fn pick_or_random(
        rng: &mut XorShift,
        entries: &[(String, u32)],
        random: impl FnOnce(&mut XorShift) -> String,
    ) -> String {
        if entries.is_empty() || rng.below(4) == 0 {
            random(rng)
        } else {
            entries[rng.below(entries.len())].0.clone()
        }
    }

    /// 1 to 4 components over a 3-letter alphabet, some of them empty.
    fn random_uri(rng: &mut XorShift, empty_components: bool) -> String {
        const COMPONENTS: [&str; 5] = ["a", "b", "c", "ab", ""];
        let alphabet = if empty_components { 5 } else { 4 };
        let count = 1 + rng.below(4);
        let components: Vec<&str> = (0..count)
            .map(|_| COMPONENTS[rng.below(alphabet)])
            .collect();
        components.join(".")
    }

    /// A URI's first few bytes (often cut inside a component), sometimes empty.
    fn random_prefix(rng: &mut XorShift) -> String {
        let uri = random_uri(rng, false);
        let cut = rng.below(uri.len() + 1);
        uri[..cut].to_string()
    }

    /// xorshift64: enough randomness for test cases, no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, bound: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % bound as u64) as usize
        }
    }
}
