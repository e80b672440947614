//! Keeps pdf-extract's walk up the page tree finite.
//!
//! pdf-extract finds a page's inherited attributes (`/MediaBox`,
//! `/Resources`) by following `/Parent` links until a node has them, with no
//! cycle check. A page that is its own parent and lacks a `/MediaBox` (found
//! by fuzzing: a 610-byte PDF) made that walk endless: the recursion is a
//! tail call, so a release build spins instead of overflowing, inside one
//! page, where an in-process reader never looks at its deadline. Before
//! extracting, [`break_parent_cycles`] cuts the `/Parent` link that closes a
//! cycle or makes a chain deeper than [`MAX_TREE_DEPTH`]. Only broken or
//! hostile documents have either, and what they lose is inheritance from
//! an ancestor that was never well defined.

use std::collections::{HashMap, HashSet};

use lopdf::{Document, Object, ObjectId};

/// The longest chain of `/Parent` links kept. Real page trees are a few
/// levels deep (writers balance them; a million pages fit in six levels).
pub(super) const MAX_TREE_DEPTH: usize = 64;

/// Removes `/Parent` links so that every chain of them ends, within
/// [`MAX_TREE_DEPTH`] links, at a node without one. Linear in the number of
/// objects: each node's depth is worked out once.
pub(super) fn break_parent_cycles(doc: &mut Document) {
    let parents: HashMap<ObjectId, ObjectId> = doc
        .objects
        .iter()
        .filter_map(|(&id, object)| {
            let dict = match object {
                Object::Dictionary(dict) => dict,
                Object::Stream(stream) => &stream.dict,
                _ => return None,
            };
            let parent = dict.get(b"Parent").ok()?.as_reference().ok()?;
            Some((id, parent))
        })
        .collect();

    let mut cut: HashSet<ObjectId> = HashSet::new();
    // Links from a node to the root (a node without a kept parent link).
    let mut depth: HashMap<ObjectId, usize> = HashMap::new();
    for &start in parents.keys() {
        if depth.contains_key(&start) {
            continue;
        }
        let mut path = vec![start];
        let mut on_path = HashSet::from([start]);
        let last_depth = loop {
            let last = path[path.len() - 1];
            let Some(&parent) = parents.get(&last) else {
                break 0;
            };
            // `parent` is not a key of `parents` when it has no link itself
            // (the root, or a dangling reference): depth 0.
            let above = match depth.get(&parent) {
                Some(&d) => Some(d),
                None if !parents.contains_key(&parent) => Some(0),
                None => None,
            };
            match above {
                Some(d) if d + path.len() <= MAX_TREE_DEPTH => break d + 1,
                Some(_) => {
                    cut.insert(last);
                    break 0;
                }
                None if on_path.contains(&parent) || path.len() >= MAX_TREE_DEPTH => {
                    cut.insert(last);
                    break 0;
                }
                None => {
                    path.push(parent);
                    on_path.insert(parent);
                }
            }
        };
        for (steps, node) in path.iter().rev().enumerate() {
            depth.insert(*node, last_depth + steps);
        }
    }

    for id in cut {
        match doc.objects.get_mut(&id) {
            Some(Object::Dictionary(dict)) => {
                dict.remove(b"Parent");
            }
            Some(Object::Stream(stream)) => {
                stream.dict.remove(b"Parent");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::dictionary;

    /// `count` dictionaries, each the parent of the next; `loop_back` makes
    /// the first one's parent the last.
    fn chain(count: u32, loop_back: bool) -> Document {
        let mut doc = Document::with_version("1.7");
        for n in 1..=count {
            let mut dict = dictionary! { "Type" => "Pages" };
            if n > 1 {
                dict.set("Parent", Object::Reference((n - 1, 0)));
            } else if loop_back {
                dict.set("Parent", Object::Reference((count, 0)));
            }
            doc.objects.insert((n, 0), Object::Dictionary(dict));
        }
        doc
    }

    /// The longest walk up `/Parent` links from any object, or `None` if a
    /// walk repeats a node.
    fn longest_walk(doc: &Document) -> Option<usize> {
        let mut longest = 0;
        for &start in doc.objects.keys() {
            let mut seen = HashSet::from([start]);
            let mut node = start;
            while let Ok(parent) = doc
                .get_dictionary(node)
                .and_then(|d| d.get(b"Parent"))
                .and_then(Object::as_reference)
            {
                if !seen.insert(parent) {
                    return None;
                }
                node = parent;
            }
            longest = longest.max(seen.len() - 1);
        }
        Some(longest)
    }

    #[test]
    fn a_node_that_is_its_own_parent_loses_the_link() {
        let mut doc = chain(1, true);
        assert_eq!(longest_walk(&doc), None);
        break_parent_cycles(&mut doc);
        assert_eq!(longest_walk(&doc), Some(0));
    }

    #[test]
    fn a_longer_cycle_is_cut_once() {
        let mut doc = chain(5, true);
        break_parent_cycles(&mut doc);
        assert_eq!(longest_walk(&doc), Some(4));
    }

    #[test]
    fn ordinary_trees_are_left_alone() {
        let mut doc = chain(6, false);
        let before = doc.objects.clone();
        break_parent_cycles(&mut doc);
        assert_eq!(doc.objects, before);
    }

    #[test]
    fn absurdly_deep_chains_are_cut_short() {
        let mut doc = chain(1000, false);
        break_parent_cycles(&mut doc);
        let longest = longest_walk(&doc).expect("no cycle");
        assert!(longest <= MAX_TREE_DEPTH, "{longest}");
    }
}
