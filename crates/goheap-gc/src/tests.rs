//! Which handles `trace` visits, and `NO_GC`, for derived and std types.

use std::cell::{Cell, OnceCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::rc::Rc;

use crate::visitor::visited;
use crate::{DynTrace, Gc, Trace};

/// `T::NO_GC`, as a call (clippy rejects asserting a constant).
fn no_gc<T: ?Sized + Trace>() -> bool {
    T::NO_GC
}

fn addr<T: Trace>(gc: &Gc<T>) -> *const u8 {
    Gc::addr(gc)
}

/// `visited` sorted, for containers without a fixed order.
fn visited_sorted<T: ?Sized + Trace>(value: &T) -> Vec<*const u8> {
    let mut seen = visited(value);
    seen.sort();
    seen
}

fn sorted(mut addrs: Vec<*const u8>) -> Vec<*const u8> {
    addrs.sort();
    addrs
}

#[derive(Trace)]
struct Three {
    a: Gc<i32>,
    b: Gc<i32>,
    n: u64,
    c: Gc<String>,
}

#[test]
fn struct_visits_each_handle_once_in_field_order() {
    let three = Three {
        a: Gc::new(1),
        b: Gc::new(2),
        n: 7,
        c: Gc::new("c".to_owned()),
    };
    assert_eq!(
        visited(&three),
        [addr(&three.a), addr(&three.b), addr(&three.c)]
    );
    // The same value visits the same handles again.
    assert_eq!(visited(&three), visited(&three));
    assert_eq!(three.n, 7);
    assert!(!no_gc::<Three>());
}

#[test]
fn two_handles_to_one_object_are_two_visits() {
    let shared = Gc::new(5);
    let three = Three {
        a: shared.clone(),
        b: shared.clone(),
        n: 0,
        c: Gc::new(String::new()),
    };
    assert_eq!(visited(&three)[..2], [addr(&shared), addr(&shared)]);
}

#[derive(Trace)]
struct Tuple(Gc<u8>, u8, Gc<u8>);

#[derive(Trace)]
struct Unit;

#[test]
fn tuple_and_unit_structs() {
    let tuple = Tuple(Gc::new(1), 2, Gc::new(3));
    assert_eq!(visited(&tuple), [addr(&tuple.0), addr(&tuple.2)]);
    assert_eq!(tuple.1, 2);
    assert!(!no_gc::<Tuple>());
    assert!(visited(&Unit).is_empty());
    assert!(no_gc::<Unit>());
}

#[derive(Trace)]
enum Shape {
    Empty,
    Leaf(u32),
    One(Gc<u32>),
    Two {
        left: Gc<u32>,
        weight: f64,
        right: Gc<u32>,
    },
    Nested(Vec<Gc<u32>>, #[trace(skip)] Option<Rc<u32>>),
}

#[test]
fn enum_visits_the_handles_of_its_variant() {
    assert!(visited(&Shape::Empty).is_empty());
    assert!(visited(&Shape::Leaf(3)).is_empty());

    let one = Gc::new(1);
    assert_eq!(visited(&Shape::One(one.clone())), [addr(&one)]);

    let (left, right) = (Gc::new(2), Gc::new(3));
    let two = Shape::Two {
        left: left.clone(),
        weight: 0.5,
        right: right.clone(),
    };
    assert_eq!(visited(&two), [addr(&left), addr(&right)]);

    let many: Vec<Gc<u32>> = (0..4).map(Gc::new).collect();
    let expected: Vec<_> = many.iter().map(addr).collect();
    let nested = Shape::Nested(many, Some(Rc::new(9)));
    assert_eq!(visited(&nested), expected);
    if let Shape::Nested(_, Some(skipped)) = &nested {
        assert_eq!(**skipped, 9);
    }
    assert!(!no_gc::<Shape>());

    // Keep the fields read, so that the test checks what it builds.
    if let Shape::Two { weight, .. } = two {
        assert_eq!(weight, 0.5);
    }
}

#[derive(Trace)]
enum Never {}

#[derive(Trace)]
enum Plain {
    A,
    B(u8),
    C { x: i64, y: String },
}

#[test]
fn enums_without_handles_are_no_gc() {
    assert!(no_gc::<Never>());
    assert!(no_gc::<Plain>());
    assert!(visited(&Plain::A).is_empty());
    assert!(visited(&Plain::B(1)).is_empty());
    assert!(visited(&Plain::C {
        x: 1,
        y: String::new()
    })
    .is_empty());
}

#[derive(Trace)]
struct Pair<A, B> {
    first: A,
    second: B,
}

#[test]
fn generic_struct_follows_its_parameters() {
    let (a, b) = (Gc::new(1_i32), Gc::new(2_u8));
    let pair = Pair {
        first: a.clone(),
        second: b.clone(),
    };
    assert_eq!(visited(&pair), [addr(&a), addr(&b)]);
    assert!(!no_gc::<Pair<Gc<i32>, Gc<u8>>>());
    assert!(!no_gc::<Pair<u8, Gc<u8>>>());
    assert!(no_gc::<Pair<u8, String>>());

    let mixed = Pair {
        first: 1_u8,
        second: Some(b.clone()),
    };
    assert_eq!(visited(&mixed), [addr(&b)]);
    assert_eq!(mixed.first, 1);
}

#[derive(Trace)]
struct Bounded<T>
where
    T: Clone,
{
    items: Vec<T>,
}

#[derive(Trace)]
struct WithConst<T, const N: usize> {
    items: [T; N],
}

#[derive(Trace)]
struct WithLifetime<'a> {
    #[trace(skip)]
    name: &'a str,
    handle: Gc<u8>,
}

#[test]
fn where_clauses_const_parameters_and_lifetimes() {
    let gcs = [Gc::new(1_u8), Gc::new(2)];
    let expected: Vec<_> = gcs.iter().map(addr).collect();
    let bounded = Bounded {
        items: gcs.to_vec(),
    };
    assert_eq!(visited(&bounded), expected);
    let with_const = WithConst { items: gcs };
    assert_eq!(visited(&with_const), expected);
    assert!(no_gc::<WithConst<u8, 3>>());

    let name = String::from("local");
    let with_lifetime = WithLifetime {
        name: &name,
        handle: Gc::new(1),
    };
    assert_eq!(visited(&with_lifetime), [addr(&with_lifetime.handle)]);
    assert_eq!(with_lifetime.name, "local");
}

#[test]
fn nested_containers() {
    let (a, b) = (Gc::new(1_u8), Gc::new(2_u8));
    let nested: Vec<Option<Gc<u8>>> = vec![Some(a.clone()), None, Some(b.clone())];
    assert_eq!(visited(&nested), [addr(&a), addr(&b)]);
    assert!(!no_gc::<Vec<Option<Gc<u8>>>>());

    let map: HashMap<String, Gc<u8>> =
        HashMap::from([("a".to_owned(), a.clone()), ("b".to_owned(), b.clone())]);
    assert_eq!(visited_sorted(&map), sorted(vec![addr(&a), addr(&b)]));
    assert!(!no_gc::<HashMap<String, Gc<u8>>>());
    assert!(no_gc::<HashMap<String, u8>>());

    type Deep = BTreeMap<u8, (Gc<u8>, Box<[Option<Gc<u8>>]>)>;
    let deep: Deep = BTreeMap::from([(
        1,
        (a.clone(), vec![Some(b.clone()), None].into_boxed_slice()),
    )]);
    assert_eq!(visited(&deep), [addr(&a), addr(&b)]);

    let queue: VecDeque<Result<Gc<u8>, Gc<u8>>> = VecDeque::from([Ok(a.clone()), Err(b.clone())]);
    assert_eq!(visited(&queue), [addr(&a), addr(&b)]);

    let tuple = (1_u8, a.clone(), "s", [Some(b.clone())]);
    assert_eq!(visited(&tuple), [addr(&a), addr(&b)]);

    let gc_in_gc = Gc::new(vec![a.clone()]);
    // A handle visits itself, not what its object holds.
    assert_eq!(visited(&gc_in_gc), [addr(&gc_in_gc)]);
}

#[derive(Trace)]
struct Skipping {
    kept: Gc<u8>,
    #[trace(skip)]
    skipped: Gc<u8>,
    #[trace(skip)]
    not_trace: Rc<u8>,
}

#[derive(Trace)]
struct OnlySkippedHandles {
    #[trace(skip)]
    skipped: Gc<u8>,
}

#[test]
fn skipped_fields_are_not_visited_and_count_as_no_gc() {
    let skipping = Skipping {
        kept: Gc::new(1),
        skipped: Gc::new(2),
        not_trace: Rc::new(3),
    };
    assert_eq!(visited(&skipping), [addr(&skipping.kept)]);
    assert_eq!(*skipping.skipped + *skipping.not_trace, 5);
    assert!(!no_gc::<Skipping>());

    let only = OnlySkippedHandles {
        skipped: Gc::new(4),
    };
    assert!(visited(&only).is_empty());
    assert_eq!(*only.skipped, 4);
    assert!(no_gc::<OnlySkippedHandles>());
}

#[derive(Trace)]
struct Ints {
    a: u8,
    b: i64,
    c: (u16, char),
}

#[derive(Trace)]
#[trace(no_gc)]
struct Buffer {
    bytes: Box<[u8]>,
    text: Box<str>,
    #[trace(skip)]
    shared: Rc<u8>,
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // A `no_gc` type may implement `Drop`.
        self.bytes = Box::new([]);
    }
}

#[derive(Trace)]
#[trace(no_gc)]
struct GenericNoGc<T> {
    items: Vec<T>,
    count: usize,
}

#[derive(Trace)]
#[trace(no_gc)]
enum NoGcEnum {
    A(u8),
    B { s: String },
}

#[test]
fn no_gc_for_each_shape() {
    assert!(no_gc::<Vec<u8>>());
    assert!(!no_gc::<Vec<Gc<u8>>>());
    assert!(no_gc::<Ints>());
    assert!(no_gc::<Buffer>());
    assert!(no_gc::<GenericNoGc<u32>>());
    assert!(no_gc::<NoGcEnum>());

    let ints = Ints {
        a: 1,
        b: 2,
        c: (3, 'x'),
    };
    assert!(visited(&ints).is_empty());
    assert_eq!(i64::from(ints.a) + ints.b + i64::from(ints.c.0), 6);
    assert_eq!(ints.c.1, 'x');
    let buffer = Buffer {
        bytes: vec![1, 2].into_boxed_slice(),
        text: "t".into(),
        shared: Rc::new(1),
    };
    assert!(visited(&buffer).is_empty());
    assert_eq!(
        buffer.bytes.len() + buffer.text.len() + usize::from(*buffer.shared),
        4
    );
    let generic = GenericNoGc {
        items: vec![1_u32],
        count: 1,
    };
    assert!(visited(&generic).is_empty());
    assert_eq!(generic.items.len(), generic.count);
    for value in [NoGcEnum::A(1), NoGcEnum::B { s: "s".to_owned() }] {
        assert!(visited(&value).is_empty());
        match value {
            NoGcEnum::A(n) => assert_eq!(n, 1),
            NoGcEnum::B { s } => assert_eq!(s, "s"),
        }
    }
}

#[test]
fn no_gc_of_std_types() {
    assert!(no_gc::<u8>() && no_gc::<f64>() && no_gc::<bool>() && no_gc::<char>() && no_gc::<()>());
    assert!(no_gc::<str>() && no_gc::<&'static str>() && no_gc::<String>());
    assert!(no_gc::<core::num::NonZeroU32>() && no_gc::<std::time::Duration>());
    assert!(no_gc::<std::time::Instant>() && no_gc::<std::time::SystemTime>());
    assert!(no_gc::<std::path::PathBuf>() && no_gc::<std::ffi::OsString>());
    assert!(no_gc::<std::ffi::CString>());
    assert!(no_gc::<std::sync::atomic::AtomicU64>() && no_gc::<std::sync::atomic::AtomicBool>());
    assert!(no_gc::<PhantomData<Gc<u8>>>());
    assert!(no_gc::<(u8, String, [u16; 4])>());
    assert!(!no_gc::<(u8, String, [Gc<u16>; 4])>());
    assert!(no_gc::<(u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8)>());
    assert!(!no_gc::<(u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, Gc<u8>)>());
    assert!(no_gc::<[u8]>() && !no_gc::<[Gc<u8>]>());
    assert!(no_gc::<Option<u8>>() && !no_gc::<Option<Gc<u8>>>());
    assert!(no_gc::<Result<u8, String>>() && !no_gc::<Result<u8, Gc<u8>>>());
    assert!(no_gc::<Box<u8>>() && no_gc::<Box<str>>() && no_gc::<Box<[u8]>>());
    assert!(!no_gc::<Box<Gc<u8>>>() && !no_gc::<Box<dyn DynTrace>>());
    assert!(no_gc::<HashSet<u8>>() && !no_gc::<HashSet<Gc<u8>>>());
    assert!(no_gc::<Cell<u32>>() && no_gc::<Cell<(u8, char)>>());
    assert!(no_gc::<OnceCell<u8>>() && !no_gc::<OnceCell<Gc<u8>>>());
    assert!(!no_gc::<Gc<u8>>());
}

#[test]
fn once_cell_visits_its_value_once_set() {
    let cell: OnceCell<Gc<u8>> = OnceCell::new();
    assert!(visited(&cell).is_empty());
    let handle = Gc::new(1);
    assert!(cell.set(handle.clone()).is_ok());
    assert_eq!(visited(&cell), [addr(&handle)]);
}

#[test]
fn cell_of_copy_visits_nothing() {
    let cell = Cell::new(5_u32);
    assert!(visited(&cell).is_empty());
}

trait Animal: DynTrace {
    fn legs(&self) -> u32;
}
crate::impl_trace_for_dyn!(dyn Animal, dyn Animal + Send);

#[derive(Trace)]
struct Dog {
    owner: Gc<String>,
}

impl Animal for Dog {
    fn legs(&self) -> u32 {
        4
    }
}

#[derive(Trace)]
struct Fish;

impl Animal for Fish {
    fn legs(&self) -> u32 {
        0
    }
}

#[test]
fn trait_objects_visit_through_the_vtable() {
    let owner = Gc::new("me".to_owned());
    let zoo: Vec<Box<dyn Animal>> = vec![
        Box::new(Fish),
        Box::new(Dog {
            owner: owner.clone(),
        }),
    ];
    assert_eq!(zoo.iter().map(|a| a.legs()).sum::<u32>(), 4);
    assert_eq!(visited(&zoo), [addr(&owner)]);
    assert!(!no_gc::<Vec<Box<dyn Animal>>>());

    let any: Box<dyn DynTrace> = Box::new(Some(owner.clone()));
    assert_eq!(visited(&any), [addr(&owner)]);
}

#[test]
fn gc_is_send_and_sync_for_send_sync_values() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Gc<Vec<Gc<String>>>>();
    let handle = Gc::new(41_u64);
    let sent = handle.clone();
    let got = std::thread::spawn(move || *sent + 1).join().unwrap();
    assert_eq!(got, 42);
}

#[derive(Trace)]
struct BoxList {
    value: u8,
    next: Option<Box<BoxList>>,
}

#[test]
fn recursive_through_box() {
    let list = BoxList {
        value: 1,
        next: Some(Box::new(BoxList {
            value: 2,
            next: None,
        })),
    };
    assert!(visited(&list).is_empty());
    assert!(!no_gc::<BoxList>());
    assert_eq!(list.value + list.next.as_ref().map_or(0, |n| n.value), 3);
}

#[derive(Trace)]
struct Tree<T> {
    value: T,
    kids: Vec<Tree<T>>,
}

#[derive(Trace)]
#[trace(no_gc)]
struct DataTree {
    value: u32,
    kids: Vec<DataTree>,
}

#[derive(Trace)]
#[trace(no_gc)]
struct GenericDataTree<T> {
    value: T,
    kids: Vec<Self>,
}

// Mutual recursion: one field of the cycle says so.
#[derive(Trace)]
enum Expr {
    Leaf(Gc<i64>),
    Block(#[trace(recursive)] Vec<Stmt>),
}

#[derive(Trace)]
enum Stmt {
    Eval(Box<Expr>),
    Nop,
}

#[test]
fn recursive_types() {
    let handle = Gc::new(1_u8);
    let tree = Tree {
        value: handle.clone(),
        kids: vec![Tree {
            value: handle.clone(),
            kids: Vec::new(),
        }],
    };
    assert_eq!(visited(&tree), [addr(&handle), addr(&handle)]);
    // A recursive field counts as possibly holding `Gc`.
    assert!(!no_gc::<Tree<Gc<u8>>>() && !no_gc::<Tree<u8>>());

    let data = DataTree {
        value: 1,
        kids: vec![DataTree {
            value: 2,
            kids: Vec::new(),
        }],
    };
    assert!(no_gc::<DataTree>() && visited(&data).is_empty());
    assert_eq!(data.value + data.kids[0].value, 3);
    let generic = GenericDataTree {
        value: 1_u8,
        kids: Vec::new(),
    };
    assert!(no_gc::<GenericDataTree<u8>>() && visited(&generic).is_empty());
    assert!(generic.kids.is_empty() && generic.value == 1);

    let leaf = Gc::new(7);
    let expr = Expr::Block(vec![
        Stmt::Nop,
        Stmt::Eval(Box::new(Expr::Leaf(leaf.clone()))),
    ]);
    assert_eq!(visited(&expr), [addr(&leaf)]);
    assert!(!no_gc::<Expr>() && !no_gc::<Stmt>());
}
