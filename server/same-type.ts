// Compile-time proof that two separately written types are one and the same, for the few
// places where a type must be restated rather than imported (see api-types.ts):
// `Expect<Equal<A, B>>` does not compile unless A and B are identical — same fields, same
// optionality, same readonly-ness — not merely assignable one way.
export type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
export type Expect<T extends true> = T;
