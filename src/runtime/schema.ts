/**
 * The pipeline file's schema, in TypeBox: the TypeScript types below are derived from it, and
 * ajv validates files against the same object. It describes the file after `extends:` merging
 * (a child file may give only part of a stage, which its parent completes).
 */
import { Type, type Static } from '@sinclair/typebox';

export const IDENT = '^[A-Za-z_][A-Za-z0-9_-]*$';

const MatrixAxis = Type.Union(
  [
    Type.Array(Type.Union([Type.String(), Type.Number(), Type.Boolean()]), { minItems: 1 }),
    Type.String({ pattern: '^\\s*\\$\\{\\{.*\\}\\}\\s*$' }),
  ],
  { description: 'a non-empty list of scalar values, or a ${{ params.NAME }} reference to such a list' },
);

export const StageDeclSchema = Type.Object(
  {
    uses: Type.String({ minLength: 1, description: 'stage type' }),
    description: Type.Optional(Type.String()),
    with: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'params of the stage type' })),
    matrix: Type.Optional(Type.Record(Type.String({ pattern: IDENT }), MatrixAxis)),
    needs: Type.Optional(Type.Array(Type.String({ pattern: IDENT }), { description: 'extra ordering dependencies' })),
    resources: Type.Optional(
      Type.Record(
        Type.String({ pattern: IDENT }),
        Type.Union([Type.Integer({ minimum: 0 }), Type.String()], {
          description: 'a non-negative integer or a ${{ params.NAME }} reference',
        }),
      ),
    ),
    heavy: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const PipelineFileSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1 })),
    description: Type.Optional(Type.String()),
    params: Type.Optional(Type.Record(Type.String({ pattern: IDENT }), Type.Unknown())),
    defaults: Type.Optional(
      Type.Record(Type.String(), Type.Record(Type.String(), Type.Unknown()), {
        description: 'stage type -> params merged under the `with:` of every stage of that type',
      }),
    ),
    stages: Type.Record(Type.String({ pattern: IDENT }), StageDeclSchema),
  },
  { additionalProperties: false },
);

export type StageDecl = Static<typeof StageDeclSchema>;
export type PipelineFile = Static<typeof PipelineFileSchema>;
