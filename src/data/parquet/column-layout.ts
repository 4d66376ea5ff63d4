/**
 * Resolves the activation column in a parquet schema: a list (3-level LIST, or any chain of
 * single-child groups with exactly one repeated level) of float16, float or double.
 */
import type { FileMetaData, SchemaTree } from 'hyparquet';
import { parquetSchema } from 'hyparquet';

export type ElementType = 'float16' | 'float' | 'double';

export interface ColumnLayout {
  column: string;
  /** path_in_schema of the leaf, e.g. ['activations', 'list', 'element']. */
  leafPath: string[];
  element: ElementType;
  /** Highest definition level: a present, non-null value. */
  maxDef: number;
  maxRep: number;
}

export function resolveColumn(metadata: FileMetaData, column: string): ColumnLayout {
  const root = parquetSchema(metadata);
  const top = root.children.find((c) => c.element.name === column);
  if (!top) {
    const names = root.children.map((c) => c.element.name).join(', ');
    throw new Error(`column "${column}" not found (columns: ${names || 'none'})`);
  }
  const path: SchemaTree[] = [top];
  let node = top;
  while (node.children.length > 0) {
    if (node.children.length > 1) {
      throw new Error(
        `column "${column}" is not a list of numbers: "${node.element.name}" has ${node.children.length} fields`,
      );
    }
    node = node.children[0];
    path.push(node);
  }
  const maxRep = path.filter((n) => n.element.repetition_type === 'REPEATED').length;
  const maxDef = path.filter((n) => n.element.repetition_type !== 'REQUIRED').length;
  if (maxRep !== 1) {
    throw new Error(
      `column "${column}" must be a list of numbers (one repeated level), found ${maxRep} repeated levels`,
    );
  }
  return { column, leafPath: node.path, element: elementType(node, column), maxDef, maxRep };
}

function elementType(leaf: SchemaTree, column: string): ElementType {
  const e = leaf.element;
  if (e.type === 'FIXED_LEN_BYTE_ARRAY' && e.type_length === 2 && e.logical_type?.type === 'FLOAT16') return 'float16';
  if (e.type === 'FLOAT') return 'float';
  if (e.type === 'DOUBLE') return 'double';
  const logical = e.logical_type ? ` (${e.logical_type.type})` : '';
  throw new Error(
    `column "${column}": element type ${e.type}${e.type_length ? `(${e.type_length})` : ''}${logical} is ` +
      `not supported; expected float16, float or double`,
  );
}
