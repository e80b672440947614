//! Keeps pdf-extract's recursion through form XObjects bounded.
//!
//! pdf-extract draws a form XObject (`/Name Do`) by recursing into its
//! content stream, with no depth limit and no cycle check. A form that draws
//! itself, directly or through others, recurses until the thread's stack
//! overflows, and a stack overflow aborts the whole process: a 1 KB PDF
//! could take the drain down, and again on every retry. Before extracting,
//! [`break_form_recursion`] removes the `Do` operations that close a cycle
//! or nest forms deeper than [`MAX_FORM_NESTING`].
//!
//! Names are resolved the way pdf-extract resolves them: in the form's own
//! `/Resources` when it has them, else in the resources of whatever drew it.
//! So a node of the call graph is a form *and* the resources its names
//! resolve in. A removed `Do` is removed from the form's content for every
//! caller: only documents that are broken or hostile lose anything.

use std::collections::{HashMap, HashSet};

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object, ObjectId};

/// The deepest chain of forms drawing forms that is kept. Real documents
/// nest a few levels at most.
pub(super) const MAX_FORM_NESTING: usize = 24;

/// Where a resources dictionary lives: its own object, or inline in the
/// dictionary of the page, pages node or form that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Res {
    Indirect(ObjectId),
    InlineIn(ObjectId),
}

/// A form drawn with its names resolving in `res`.
type Node = (ObjectId, Res);

/// Removes `Do` operations from form XObjects so that no cycle of forms
/// remains and no chain of forms is deeper than [`MAX_FORM_NESTING`].
/// Cheap when no form draws another (the usual case): one pass over the
/// forms' contents.
pub(super) fn break_form_recursion(doc: &mut Document) {
    // Forms, whether they have their own resources, and the names of what
    // they draw.
    let mut forms: HashMap<ObjectId, Option<Res>> = HashMap::new();
    let mut calls: HashMap<ObjectId, Vec<Vec<u8>>> = HashMap::new();
    for (&id, object) in &doc.objects {
        // Every stream, not only those marked `/Subtype /Form`: pdf-extract
        // draws whatever stream a `Do` names, whatever its subtype says, so a
        // self-drawing stream with a mangled `/Subtype` recursed unchecked
        // (found by fuzzing: an 821-byte PDF overflowed the reader's stack).
        let Object::Stream(stream) = object else {
            continue;
        };
        forms.insert(id, resources_key(doc, id, &stream.dict));
        let Ok(content) = stream.get_plain_content() else {
            continue;
        };
        if !content.windows(2).any(|w| w == b"Do") {
            continue;
        }
        let Ok(content) = Content::decode(&content) else {
            continue;
        };
        let names: Vec<Vec<u8>> = content
            .operations
            .iter()
            .filter(|op| op.operator == "Do")
            .filter_map(|op| op.operands.first()?.as_name().ok().map(<[u8]>::to_vec))
            .collect();
        if !names.is_empty() {
            calls.insert(id, names);
        }
    }
    if calls.is_empty() {
        return;
    }

    // Every way a calling form can be entered: through its own resources,
    // or through each resources dictionary that lists it.
    let mut starts: Vec<Node> = Vec::new();
    for (&form, own) in &forms {
        if let (Some(own), true) = (own, calls.contains_key(&form)) {
            starts.push((form, *own));
        }
    }
    for (&owner, object) in &doc.objects {
        let dict = match object {
            Object::Dictionary(d) => d,
            Object::Stream(s) => &s.dict,
            _ => continue,
        };
        let Some(res) = resources_key(doc, owner, dict) else {
            continue;
        };
        let Some(xobjects) = xobjects(doc, res) else {
            continue;
        };
        for (_, target) in xobjects.iter() {
            if let Ok(target) = target.as_reference()
                && calls.contains_key(&target)
                && forms.get(&target).is_some_and(Option::is_none)
            {
                starts.push((target, res));
            }
        }
    }

    let cuts = find_cuts(doc, &forms, &calls, &starts);
    for (form, names) in cuts {
        remove_calls(doc, form, &names);
    }
}

/// The `(form, name)` calls to remove, by a depth-first walk of the call
/// graph that cuts back edges (cycles) and edges to subgraphs too deep.
fn find_cuts(
    doc: &Document,
    forms: &HashMap<ObjectId, Option<Res>>,
    calls: &HashMap<ObjectId, Vec<Vec<u8>>>,
    starts: &[Node],
) -> HashMap<ObjectId, HashSet<Vec<u8>>> {
    enum Mark {
        Active,
        /// The longest chain of forms from here, this one included.
        Done(usize),
    }
    struct Frame {
        node: Node,
        children: Vec<(Vec<u8>, Node)>,
        next: usize,
        height: usize,
    }
    let children = |(form, res): Node| -> Vec<(Vec<u8>, Node)> {
        let Some(xobjects) = xobjects(doc, res) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for name in calls.get(&form).into_iter().flatten() {
            if let Ok(target) = xobjects.get(name).and_then(Object::as_reference)
                && let Some(own) = forms.get(&target)
            {
                out.push((name.clone(), (target, own.unwrap_or(res))));
            }
        }
        out
    };

    fn cut(cuts: &mut HashMap<ObjectId, HashSet<Vec<u8>>>, form: ObjectId, name: &[u8]) {
        cuts.entry(form).or_default().insert(name.to_vec());
    }
    let mut marks: HashMap<Node, Mark> = HashMap::new();
    let mut cuts: HashMap<ObjectId, HashSet<Vec<u8>>> = HashMap::new();
    for &start in starts {
        if marks.contains_key(&start) {
            continue;
        }
        marks.insert(start, Mark::Active);
        let mut stack = vec![Frame {
            node: start,
            children: children(start),
            next: 0,
            height: 1,
        }];
        while let Some(top) = stack.last_mut() {
            if top.next < top.children.len() {
                let (name, child) = top.children[top.next].clone();
                top.next += 1;
                match marks.get(&child) {
                    Some(Mark::Active) => cut(&mut cuts, top.node.0, &name),
                    Some(&Mark::Done(h)) if h >= MAX_FORM_NESTING => {
                        cut(&mut cuts, top.node.0, &name)
                    }
                    Some(&Mark::Done(h)) => top.height = top.height.max(h + 1),
                    None if !calls.contains_key(&child.0) => top.height = top.height.max(2),
                    None => {
                        marks.insert(child, Mark::Active);
                        stack.push(Frame {
                            node: child,
                            children: children(child),
                            next: 0,
                            height: 1,
                        });
                    }
                }
                continue;
            }
            let done = stack.pop().expect("non-empty");
            marks.insert(done.node, Mark::Done(done.height));
            if let Some(parent) = stack.last_mut() {
                let (name, _) = &parent.children[parent.next - 1];
                if done.height >= MAX_FORM_NESTING {
                    cut(&mut cuts, parent.node.0, name);
                } else {
                    parent.height = parent.height.max(done.height + 1);
                }
            }
        }
    }
    cuts
}

/// Drops `form`'s `Do` operations that draw any of `names`.
fn remove_calls(doc: &mut Document, form: ObjectId, names: &HashSet<Vec<u8>>) {
    let Ok(Object::Stream(stream)) = doc.get_object_mut(form) else {
        return;
    };
    let Ok(content) = stream.get_plain_content() else {
        return;
    };
    let Ok(mut content) = Content::decode(&content) else {
        return;
    };
    content.operations.retain(|op| {
        op.operator != "Do"
            || !op
                .operands
                .first()
                .and_then(|o| o.as_name().ok())
                .is_some_and(|n| names.contains(n))
    });
    match content.encode() {
        Ok(bytes) => stream.set_plain_content(bytes),
        // Unreachable in practice (it was just decoded); if it happens, the
        // form is emptied rather than left recursive.
        Err(_) => stream.set_plain_content(Vec::new()),
    }
}

/// The key of `owner`'s `/Resources`, if it has a dictionary there.
fn resources_key(doc: &Document, owner: ObjectId, dict: &Dictionary) -> Option<Res> {
    match dict.get(b"Resources").ok()? {
        Object::Reference(id) => doc.get_dictionary(*id).ok().map(|_| Res::Indirect(*id)),
        Object::Dictionary(_) => Some(Res::InlineIn(owner)),
        _ => None,
    }
}

/// The `/XObject` dictionary of a resources dictionary.
fn xobjects(doc: &Document, res: Res) -> Option<&Dictionary> {
    let resources = match res {
        Res::Indirect(id) => doc.get_dictionary(id).ok()?,
        Res::InlineIn(owner) => {
            let dict = match doc.get_object(owner).ok()? {
                Object::Dictionary(d) => d,
                Object::Stream(s) => &s.dict,
                _ => return None,
            };
            dict.get(b"Resources").ok()?.as_dict().ok()?
        }
    };
    match resources.get(b"XObject").ok()? {
        Object::Reference(id) => doc.get_dictionary(*id).ok(),
        Object::Dictionary(d) => Some(d),
        _ => None,
    }
}
