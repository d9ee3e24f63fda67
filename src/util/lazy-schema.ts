/**
 * A zod schema built the first time it is used rather than when its module loads. Building a
 * schema is most of what importing a schema module costs (zod assembles every object, union and
 * refinement eagerly), and every command loads modules whose documents it never parses in that
 * run: a mirror that is up to date by HEAD parses no manifest at all. The value stands in for the
 * schema under its exported name (`IndexSchema.parse(…)`, `parseDocument(IndexSchema, …)`,
 * `DigestSchema.optional()`, `z.array(DescriptorSchema)`, `z.infer<typeof IndexSchema>`): every
 * property read goes to the schema, built on the first one. zod reads a schema only through its
 * properties (`_zod`, and instanceof through `Symbol.hasInstance`, which reads `_zod.traits`), so
 * a stand-in inside another schema validates as the schema itself would.
 */
export function lazySchema<T extends object>(build: () => T): T {
  let schema: T | undefined;
  const target = (): T => {
    schema ??= build();
    return schema;
  };
  return new Proxy({} as T, {
    get: (_, key) => Reflect.get(target(), key, target()),
    has: (_, key) => Reflect.has(target(), key),
    getPrototypeOf: () => Reflect.getPrototypeOf(target()),
  });
}
