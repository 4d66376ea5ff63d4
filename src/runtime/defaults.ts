/**
 * Pipeline-level `defaults:` per stage type, merged under each stage's `with:`:
 *
 *   defaults:
 *     train-sae: { batch_size: 4096, warmup_steps: 1000 }
 *
 * A stage's own `with:` wins, key by key and deeply (as `extends:` merges `with:`). The merge
 * happens before references are substituted, so a stage gets exactly the params it would have
 * with the defaults written out in its `with:`: the cache key is the same either way.
 */
import { PipelineError, PipelineErrors } from './errors.js';
import { deepMerge, isPlainObject } from './format.js';
import type { Json, StageType } from './stage.js';
import { pointerOf, type NodePos, type Positions, type SourceDoc } from './yaml-source.js';
import { didYouMean } from './suggest.js';

type Defaults = Record<string, Record<string, Json>>;
type StageDecls = Record<string, { uses: string; with?: Record<string, unknown> }>;

/**
 * Checks `defaults:` (known stage types, known params) and merges it into the `with:` of every
 * stage of each type. Errors point at the key at fault; a param that came from `defaults:`
 * points there too, so later errors about its value name the line it was written on.
 */
export function applyDefaults(
  data: { defaults?: unknown; stages: StageDecls },
  positions: Positions,
  types: StageType<any>[],
): void {
  const defaults = (data.defaults ?? {}) as Defaults;
  const known = new Map(types.map((t) => [t.name, t]));
  const errors: PipelineError[] = [];
  for (const [typeName, params] of Object.entries(defaults)) {
    const type = known.get(typeName);
    if (!type) {
      const names = [...known.keys()].sort().join(', ');
      errors.push(
        new PipelineError(
          `defaults: unknown stage type '${typeName}' (known: ${names})` + didYouMean(typeName, known.keys()),
          positions.at(pointerOf(['defaults', typeName]), 'key'),
        ),
      );
      continue;
    }
    const declared = Object.keys(type.params.properties);
    for (const key of Object.keys(params)) {
      if (declared.includes(key)) continue;
      errors.push(
        new PipelineError(
          `defaults.${typeName}: unknown param '${key}' of stage type ${typeName} (params: ${declared.join(', ')})` +
            didYouMean(key, declared),
          positions.at(pointerOf(['defaults', typeName, key]), 'key'),
        ),
      );
    }
  }
  if (errors.length) throw new PipelineErrors(errors);

  const aliases = new Map<string, NodePos>();
  for (const [id, decl] of Object.entries(data.stages)) {
    const given = defaults[decl.uses];
    if (!given) continue;
    const own = (decl.with ?? {}) as Json;
    aliasPositions(given, own, ['defaults', decl.uses], ['stages', id, 'with'], positions, aliases);
    decl.with = deepMerge(given, own) as Record<string, Json>;
  }
  if (aliases.size) positions.docs.push(aliasDoc(aliases));
}

/** For every path that the default supplies and the stage does not, the stage's pointer points at the default. */
function aliasPositions(
  given: Json,
  own: Json | undefined,
  from: Array<string | number>,
  to: Array<string | number>,
  positions: Positions,
  aliases: Map<string, NodePos>,
): void {
  if (own === undefined) {
    aliases.set(pointerOf(to), { value: positions.at(pointerOf(from)), key: positions.at(pointerOf(from), 'key') });
    if (isPlainObject(given))
      for (const k of Object.keys(given))
        aliasPositions(given[k], undefined, [...from, k], [...to, k], positions, aliases);
    else if (Array.isArray(given))
      given.forEach((v, i) => aliasPositions(v, undefined, [...from, i], [...to, i], positions, aliases));
    return;
  }
  if (isPlainObject(given) && isPlainObject(own)) {
    for (const k of Object.keys(given)) aliasPositions(given[k], own[k], [...from, k], [...to, k], positions, aliases);
  }
}

/** A document without text holding only positions: looked up like the files' own. */
function aliasDoc(aliases: Map<string, NodePos>): SourceDoc {
  return { file: '(defaults)', text: '', data: null, positions: aliases };
}
