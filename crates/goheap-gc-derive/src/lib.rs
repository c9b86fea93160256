//! `#[derive(Trace)]` for [`goheap-gc`](../goheap_gc/index.html).
//!
//! Use it through `goheap_gc::Trace` (the derive and the trait share the
//! name, like serde's); this crate is only its implementation. What the
//! derive emits, for a type `T`:
//!
//! * `unsafe impl Trace for T`, whose `trace` visits every field not marked
//!   `#[trace(skip)]`, each exactly once, and whose `NO_GC` is the `&&` of
//!   those fields' `NO_GC` (a type with no traced field is `NO_GC`). Every
//!   type parameter gets a `Trace` bound; the type's own where clause is
//!   kept.
//! * unless the type says `#[trace(no_gc)]`: an impl of a hidden trait that
//!   conflicts with any `impl Drop for T`, so a type that may hold `Gc`
//!   handles cannot implement `Drop` (a dead object's `drop` could reach
//!   other dead objects).
//! * with `#[trace(no_gc)]`: `NO_GC = true`, a `trace` that visits nothing,
//!   and an assertion that every field not skipped has `NO_GC`: a
//!   compile-time error for a field type that names no generic parameter,
//!   a post-monomorphization error (when `NO_GC` or `trace` is used) for
//!   one that does.
//!
//! Recursive types: `NO_GC` of `struct Tree { kids: Vec<Tree> }` would be
//! defined by itself, a const-evaluation cycle. So a field whose type names
//! the type itself (or `Self`), or that is marked `#[trace(recursive)]`
//! (for recursion through other types), counts as possibly holding `Gc`
//! instead of asking its type; with `no_gc`, its assertion moves into
//! `trace`, out of `NO_GC`'s own evaluation.
//!
//! Attributes: `#[trace(skip)]` and `#[trace(recursive)]` on a field,
//! `#[trace(no_gc)]` on the type. Unions are rejected.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    parse_macro_input, Attribute, Data, DeriveInput, Fields, GenericParam, Ident, Member, Path,
    Type,
};

/// Derives `goheap_gc::Trace`; see the crate documentation of `goheap_gc`
/// (section "Tracing") for the contract and the attributes
/// `#[trace(skip)]`, `#[trace(recursive)]` (field) and `#[trace(no_gc)]`
/// (type).
#[proc_macro_derive(Trace, attributes(trace))]
pub fn derive_trace(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// The hidden trait whose impl conflicts with `impl Drop`; its name is the
/// error message the user reads.
const NO_DROP_TRAIT: &str = "TypesHoldingGcMustNotImplementDrop__UseNoGcOrRemoveDrop";

/// One field to consider, with where it lives.
struct FieldInfo {
    /// How the field is named in a braced pattern (`name` or `0`).
    member: Member,
    /// Its type.
    ty: Type,
    /// `#[trace(skip)]`.
    skip: bool,
    /// `#[trace(recursive)]`, or the type names the type being derived:
    /// its `NO_GC` is not asked while computing the type's own.
    recursive: bool,
    /// For messages: `field`, `0`, `Variant::field`.
    label: String,
}

/// One arm of the `match self` in `trace`: a struct or one enum variant.
struct Arm {
    /// `Self` or `Self::Variant`.
    path: TokenStream2,
    fields: Vec<FieldInfo>,
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let mut errors = Errors::default();
    let no_gc = parse_container_attrs(&input.attrs, &mut errors);

    let mut arms = match &input.data {
        Data::Struct(data) => vec![Arm {
            path: quote!(Self),
            fields: collect_fields(&data.fields, None, &mut errors),
        }],
        Data::Enum(data) => data
            .variants
            .iter()
            .map(|variant| {
                reject_attrs_on_variant(&variant.attrs, &mut errors);
                let ident = &variant.ident;
                Arm {
                    path: quote!(Self::#ident),
                    fields: collect_fields(&variant.fields, Some(ident), &mut errors),
                }
            })
            .collect(),
        Data::Union(data) => {
            errors.push(syn::Error::new(
                data.union_token.span,
                "`#[derive(Trace)]` does not support unions: it cannot know which field is \
                 live. Use a struct or an enum, or implement `Trace` by hand",
            ));
            Vec::new()
        }
    };
    errors.finish()?;

    let name = &input.ident;
    let own_names = [name.to_string(), "Self".to_owned()];
    for field in arms.iter_mut().flat_map(|arm| arm.fields.iter_mut()) {
        let ty = &field.ty;
        if !field.recursive && mentions(quote!(#ty), &own_names, &[]) {
            field.recursive = true;
        }
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();

    // The Trace impl gets `P: Trace` for every type parameter P.
    let mut bounded = input.generics.clone();
    {
        let params: Vec<Ident> = bounded
            .type_params()
            .map(|param| param.ident.clone())
            .collect();
        let where_clause = bounded.make_where_clause();
        for param in params {
            where_clause
                .predicates
                .push(syn::parse_quote!(#param: ::goheap_gc::Trace));
        }
    }
    let (trace_impl_generics, _, trace_where_clause) = bounded.split_for_impl();

    let traced: Vec<&FieldInfo> = arms
        .iter()
        .flat_map(|arm| arm.fields.iter())
        .filter(|field| !field.skip)
        .collect();

    let body;
    let no_gc_value;
    let mut outside = TokenStream2::new();
    let mut drop_only_handles = TokenStream2::new();
    if no_gc {
        // Assertions that every traced field is NO_GC. Those whose type
        // names no generic parameter (nor `Self`) are checked now, in a
        // `const _`; the others when the impl is used with concrete types:
        // in `NO_GC`, or for a recursive field in `trace`.
        let generic_names = GenericNames::of(&input.generics);
        let mut eager = Vec::new();
        let mut deferred = Vec::new();
        let mut in_trace = Vec::new();
        for field in &traced {
            let ty = &field.ty;
            let message = format!(
                "`#[trace(no_gc)]` on `{name}`, but field `{}` has a type that may hold `Gc` \
                 handles (its `Trace::NO_GC` is false): remove `no_gc`, or mark the field \
                 `#[trace(skip)]` if it holds no `Gc`",
                field.label
            );
            let assertion = quote_spanned! {ty.span()=>
                ::core::assert!(<#ty as ::goheap_gc::Trace>::NO_GC, #message);
            };
            if !generic_names.mentioned_in(ty) {
                // Also when recursive: this type's `NO_GC` is then `true`,
                // with nothing to evaluate.
                eager.push(assertion);
            } else if field.recursive {
                // Asserting it inside `NO_GC` would evaluate `NO_GC` again.
                in_trace.push(assertion);
            } else {
                deferred.push(assertion);
            }
        }
        if !eager.is_empty() {
            outside = quote! {
                const _: () = { #(#eager)* };
            };
        }
        no_gc_value = if deferred.is_empty() {
            quote!(true)
        } else {
            quote!({ #(#deferred)* true })
        };
        body = if deferred.is_empty() && in_trace.is_empty() {
            quote! {
                fn trace(&self, _: &mut ::goheap_gc::Visitor<'_>) {}
            }
        } else {
            // Evaluating NO_GC runs the deferred assertions; the recursive
            // fields' run here.
            quote! {
                fn trace(&self, _: &mut ::goheap_gc::Visitor<'_>) {
                    const {
                        let _: bool = <Self as ::goheap_gc::Trace>::NO_GC;
                        #(#in_trace)*
                    }
                }
            }
        };
    } else {
        no_gc_value = if traced.iter().any(|field| field.recursive) {
            // Asking a recursive field's type would ask this type again.
            quote!(false)
        } else {
            let field_no_gc = traced.iter().map(|field| {
                let ty = &field.ty;
                quote_spanned!(ty.span()=> && <#ty as ::goheap_gc::Trace>::NO_GC)
            });
            quote!(true #(#field_no_gc)*)
        };

        let visitor = Ident::new("__goheap_gc_visitor", Span::call_site());
        if traced.is_empty() {
            body = quote! {
                fn trace(&self, _: &mut ::goheap_gc::Visitor<'_>) {}
            };
        } else {
            let match_arms = arms.iter().map(|arm| trace_arm(arm, &visitor));
            body = quote! {
                fn trace(&self, #visitor: &mut ::goheap_gc::Visitor<'_>) {
                    match self {
                        #(#match_arms)*
                    }
                }
            };
        }

        // The type has no `Drop` of its own (the impl below forbids one),
        // so its drop glue is its fields'.
        let field_drop_only_handles = arms.iter().flat_map(|arm| &arm.fields).map(|field| {
            let ty = &field.ty;
            // A recursive field is asked too: only containers that hold
            // their element inline ask the element's, and a type cannot
            // hold itself inline.
            if field.skip {
                // Not necessarily `Trace`.
                quote_spanned!(ty.span()=> && !::core::mem::needs_drop::<#ty>())
            } else {
                quote_spanned!(ty.span()=> && (<#ty as ::goheap_gc::Trace>::DROP_ONLY_HANDLES
                    || !::core::mem::needs_drop::<#ty>()))
            }
        });
        drop_only_handles =
            quote!(const DROP_ONLY_HANDLES: bool = true #(#field_drop_only_handles)*;);

        let no_drop = Ident::new(NO_DROP_TRAIT, name.span());
        outside = quote_spanned! {name.span()=>
            // A type that may hold `Gc` handles must not implement `Drop`:
            // this impl conflicts with `impl<T: Drop> ... for T`.
            impl #impl_generics ::goheap_gc::__private::#no_drop
                for #name #ty_generics #where_clause {}
        };
    }

    Ok(quote! {
        // SAFETY: `trace` visits each field not marked `#[trace(skip)]`
        // exactly once, through its own `Trace` impl, and nothing else;
        // `NO_GC` is true only when every traced field's is (or, with
        // `#[trace(no_gc)]`, asserted so for every traced field).
        #[automatically_derived]
        unsafe impl #trace_impl_generics ::goheap_gc::Trace
            for #name #ty_generics #trace_where_clause
        {
            const NO_GC: bool = #no_gc_value;
            #drop_only_handles
            #[inline]
            #body
        }
        #outside
    })
}

/// `Self::Variant { a: __f0, 1: __f1, .. } => { trace(__f0); trace(__f1); }`
fn trace_arm(arm: &Arm, visitor: &Ident) -> TokenStream2 {
    let path = &arm.path;
    let mut bindings = Vec::new();
    let mut calls = Vec::new();
    for (index, field) in arm.fields.iter().enumerate() {
        if field.skip {
            continue;
        }
        let member = &field.member;
        let binding = format_ident!("__goheap_gc_field{}", index);
        bindings.push(quote!(#member: #binding));
        calls.push(quote_spanned! {field.ty.span()=>
            ::goheap_gc::Trace::trace(#binding, #visitor);
        });
    }
    quote! {
        #path { #(#bindings,)* .. } => { #(#calls)* }
    }
}

fn collect_fields(fields: &Fields, variant: Option<&Ident>, errors: &mut Errors) -> Vec<FieldInfo> {
    fields
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let member = match &field.ident {
                Some(ident) => Member::Named(ident.clone()),
                None => Member::Unnamed(syn::Index {
                    index: index as u32,
                    span: field.ty.span(),
                }),
            };
            let name = match &field.ident {
                Some(ident) => ident.to_string(),
                None => index.to_string(),
            };
            let label = match variant {
                Some(variant) => format!("{variant}::{name}"),
                None => name,
            };
            let attrs = parse_field_attrs(&field.attrs, errors);
            FieldInfo {
                member,
                ty: field.ty.clone(),
                skip: attrs.skip,
                recursive: attrs.recursive,
                label,
            }
        })
        .collect()
}

/// The `trace` attributes on the type: returns whether `no_gc` was given.
fn parse_container_attrs(attrs: &[Attribute], errors: &mut Errors) -> bool {
    let mut no_gc = false;
    for attr in trace_attrs(attrs) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("no_gc") {
                if no_gc {
                    return Err(meta.error("duplicate `#[trace(no_gc)]`"));
                }
                no_gc = true;
                Ok(())
            } else if meta.path.is_ident("skip") {
                Err(meta.error(
                    "`#[trace(skip)]` goes on a field, not on the type; to say the whole type \
                     holds no `Gc`, use `#[trace(no_gc)]`",
                ))
            } else {
                Err(unknown(&meta.path))
            }
        });
        if let Err(err) = result {
            errors.push(err);
        }
    }
    no_gc
}

/// The `trace` attributes of one field.
#[derive(Default)]
struct FieldAttrs {
    skip: bool,
    recursive: bool,
}

fn parse_field_attrs(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut found = FieldAttrs::default();
    for attr in trace_attrs(attrs) {
        let result = attr.parse_nested_meta(|meta| {
            let flag = if meta.path.is_ident("skip") {
                &mut found.skip
            } else if meta.path.is_ident("recursive") {
                &mut found.recursive
            } else if meta.path.is_ident("no_gc") {
                return Err(meta.error(
                    "`#[trace(no_gc)]` goes on the type, not on a field; to leave this field \
                     out of tracing, use `#[trace(skip)]`",
                ));
            } else {
                return Err(unknown(&meta.path));
            };
            if *flag {
                let name = meta.path.get_ident().map(Ident::to_string);
                return Err(meta.error(format!(
                    "duplicate `#[trace({})]`",
                    name.unwrap_or_default()
                )));
            }
            *flag = true;
            Ok(())
        });
        if let Err(err) = result {
            errors.push(err);
        }
    }
    if found.skip && found.recursive {
        if let Some(attr) = trace_attrs(attrs).last() {
            errors.push(syn::Error::new_spanned(
                attr,
                "`#[trace(recursive)]` on a skipped field has no effect: a skipped field is \
                 not traced and does not count for `NO_GC`",
            ));
        }
    }
    found
}

fn reject_attrs_on_variant(attrs: &[Attribute], errors: &mut Errors) {
    for attr in trace_attrs(attrs) {
        errors.push(syn::Error::new_spanned(
            attr,
            "`#[trace(...)]` goes on the type (`no_gc`) or on a field (`skip`, `recursive`), \
             not on an enum variant; to skip a variant's fields, mark each field \
             `#[trace(skip)]`",
        ));
    }
}

fn trace_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|attr| attr.path().is_ident("trace"))
}

fn unknown(path: &Path) -> syn::Error {
    let name = path
        .get_ident()
        .map_or_else(|| quote!(#path).to_string(), Ident::to_string);
    syn::Error::new_spanned(
        path,
        format!(
            "unknown `trace` attribute `{name}`: expected `#[trace(skip)]` or \
             `#[trace(recursive)]` on a field, or `#[trace(no_gc)]` on the type"
        ),
    )
}

/// The names of a type's generic parameters, to tell whether a field type
/// mentions one (then it cannot be checked in a free-standing `const _`).
struct GenericNames {
    idents: Vec<String>,
    lifetimes: Vec<String>,
}

impl GenericNames {
    fn of(generics: &syn::Generics) -> GenericNames {
        let mut names = GenericNames {
            // `Self` cannot be named in a `const _` either.
            idents: vec!["Self".to_owned()],
            lifetimes: Vec::new(),
        };
        for param in &generics.params {
            match param {
                GenericParam::Type(param) => names.idents.push(param.ident.to_string()),
                GenericParam::Const(param) => names.idents.push(param.ident.to_string()),
                GenericParam::Lifetime(param) => {
                    names.lifetimes.push(param.lifetime.ident.to_string())
                }
            }
        }
        names
    }

    fn mentioned_in(&self, ty: &Type) -> bool {
        mentions(quote!(#ty), &self.idents, &self.lifetimes)
    }
}

/// Whether `tokens` contain one of `idents` or a lifetime named one of
/// `lifetimes` (without the quote).
fn mentions(tokens: TokenStream2, idents: &[String], lifetimes: &[String]) -> bool {
    let mut after_quote = false;
    for token in tokens {
        match token {
            TokenTree::Group(group) => {
                if mentions(group.stream(), idents, lifetimes) {
                    return true;
                }
                after_quote = false;
            }
            TokenTree::Ident(ident) => {
                let list = if after_quote { lifetimes } else { idents };
                if list.iter().any(|name| ident == name) {
                    return true;
                }
                after_quote = false;
            }
            TokenTree::Punct(punct) => after_quote = punct.as_char() == '\'',
            TokenTree::Literal(_) => after_quote = false,
        }
    }
    false
}

/// Errors collected over the whole input, reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(err),
            None => self.0 = Some(err),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
