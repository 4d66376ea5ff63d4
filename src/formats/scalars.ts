/**
 * The JSON scalars the file schemas share (src/formats/fit.ts, metrics.ts). A module of its own,
 * so that what a stage's cache key covers of the formats is the schemas of the files it writes or
 * reads (src/runtime/code.ts) and these few lines.
 */
import { Type, type TSchema } from '@sinclair/typebox';

export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
/** A number in JSON: NaN and infinities are written as null. */
export const Num = Nullable(Type.Number());
