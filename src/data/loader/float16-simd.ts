/**
 * float16 -> float32 with WebAssembly SIMD, 4-8x faster than the lookup table on the hot path
 * (one batch of 1024 x 2048 halves). The module is 200-odd bytes, assembled below from named
 * opcodes rather than shipped as a blob, so it can be read and checked.
 *
 * Per lane, for half bits h (the classic exact "magic multiply" conversion):
 *   f = bits((h & 0x7fff) << 13) * 2^112     exact for normals and subnormals alike
 *   if f >= 65536: exponent bits all ones    infinities and NaNs (their mantissa kept)
 *   f |= (h & 0x8000) << 16                  sign
 *   result = float32(double(f) * scale)      in double, so it equals the table path bit for bit
 * Without WebAssembly SIMD (very old engines) the caller falls back to the table.
 */

// Instruction encodings (WebAssembly core spec 2.0, SIMD opcodes after the 0xfd prefix).
const LOCAL_GET = 0x20,
  LOCAL_SET = 0x21,
  LOCAL_TEE = 0x22;
const I32_CONST = 0x41,
  I32_ADD = 0x6a,
  I32_SHL = 0x74,
  I32_GE_U = 0x4f;
const BLOCK = 0x02,
  LOOP = 0x03,
  BR = 0x0c,
  BR_IF = 0x0d,
  END = 0x0b,
  VOID = 0x40;
const simd = (op: number) => (op < 128 ? [0xfd, op] : [0xfd, (op & 0x7f) | 0x80, op >> 7]);
const V128_LOAD = (offset: number) => [...simd(0x00), 4, offset];
const V128_STORE = (offset: number) => [...simd(0x0b), 4, offset];
const V128_CONST_I32 = (x: number) => [...simd(0x0c), ...[x, x, x, x].flatMap(le32)];
const I8X16_SHUFFLE = (lanes: number[]) => [...simd(0x0d), ...lanes];
const F64X2_SPLAT = simd(0x14);
const F32X4_GE = simd(0x46);
const V128_AND = simd(0x4e);
const V128_OR = simd(0x50);
const F32X4_DEMOTE_F64X2_ZERO = simd(0x5e);
const F64X2_PROMOTE_LOW_F32X4 = simd(0x5f);
const I32X4_EXTEND_LOW_I16X8_U = simd(0xa9);
const I32X4_EXTEND_HIGH_I16X8_U = simd(0xaa);
const I32X4_SHL = simd(0xab);
const F32X4_MUL = simd(0xe6);
const F64X2_MUL = simd(0xf2);

// Params: 0 src (byte address of halves), 1 dst (byte address of floats), 2 n (multiple of 8),
// 3 scale (f64). Locals: 4 end (i32), 5 eight halves, 6 four halves widened, 7 floats, 8 scale x2, 9 result.
const [SRC, DST, N, SCALE, END_, HALVES, X, F, S, R] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

function le32(x: number): number[] {
  return [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, (x >>> 24) & 0xff];
}

/** Converts the four widened halves in local X; leaves four float32 on the stack. */
function convertFour(): number[] {
  return [
    LOCAL_GET,
    X,
    ...V128_CONST_I32(0x7fff),
    ...V128_AND,
    I32_CONST,
    13,
    ...I32X4_SHL,
    ...V128_CONST_I32(0x77800000),
    ...F32X4_MUL,
    LOCAL_SET,
    F, // * 2^112
    LOCAL_GET,
    F,
    LOCAL_GET,
    F,
    ...V128_CONST_I32(0x47800000),
    ...F32X4_GE, // >= 65536
    ...V128_CONST_I32(0x7f800000),
    ...V128_AND,
    ...V128_OR,
    LOCAL_GET,
    X,
    ...V128_CONST_I32(0x8000),
    ...V128_AND,
    I32_CONST,
    16,
    ...I32X4_SHL,
    ...V128_OR,
    LOCAL_TEE,
    F,
    // Scale in double: lanes 0-1, then lanes 2-3 moved down; demote each pair and join them.
    ...F64X2_PROMOTE_LOW_F32X4,
    LOCAL_GET,
    S,
    ...F64X2_MUL,
    ...F32X4_DEMOTE_F64X2_ZERO,
    LOCAL_GET,
    F,
    LOCAL_GET,
    F,
    ...I8X16_SHUFFLE([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]),
    ...F64X2_PROMOTE_LOW_F32X4,
    LOCAL_GET,
    S,
    ...F64X2_MUL,
    ...F32X4_DEMOTE_F64X2_ZERO,
    ...I8X16_SHUFFLE([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]),
  ];
}

function body(): number[] {
  const code = [
    LOCAL_GET,
    SCALE,
    ...F64X2_SPLAT,
    LOCAL_SET,
    S,
    LOCAL_GET,
    SRC,
    LOCAL_GET,
    N,
    I32_CONST,
    1,
    I32_SHL,
    I32_ADD,
    LOCAL_SET,
    END_,
    BLOCK,
    VOID,
    LOOP,
    VOID,
    LOCAL_GET,
    SRC,
    LOCAL_GET,
    END_,
    I32_GE_U,
    BR_IF,
    1,
    LOCAL_GET,
    SRC,
    ...V128_LOAD(0),
    LOCAL_SET,
    HALVES,
    LOCAL_GET,
    HALVES,
    ...I32X4_EXTEND_LOW_I16X8_U,
    LOCAL_SET,
    X,
    ...convertFour(),
    LOCAL_SET,
    R,
    LOCAL_GET,
    DST,
    LOCAL_GET,
    R,
    ...V128_STORE(0),
    LOCAL_GET,
    HALVES,
    ...I32X4_EXTEND_HIGH_I16X8_U,
    LOCAL_SET,
    X,
    ...convertFour(),
    LOCAL_SET,
    R,
    LOCAL_GET,
    DST,
    LOCAL_GET,
    R,
    ...V128_STORE(16),
    LOCAL_GET,
    SRC,
    I32_CONST,
    16,
    I32_ADD,
    LOCAL_SET,
    SRC,
    LOCAL_GET,
    DST,
    I32_CONST,
    32,
    I32_ADD,
    LOCAL_SET,
    DST,
    BR,
    0,
    END,
    END,
    END,
  ];
  const locals = [2, 1, 0x7f, 5, 0x7b]; // 1 x i32, 5 x v128
  return [...uleb(locals.length + code.length), ...locals, ...code];
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function moduleBytes(): Uint8Array {
  const name = (s: string) => [s.length, ...Buffer.from(s)];
  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [1, 0x60, 4, 0x7f, 0x7f, 0x7f, 0x7c, 0]), // type: (i32 i32 i32 f64) -> ()
    ...section(3, [1, 0]), // one function of type 0
    ...section(5, [1, 0, 1]), // one memory, min 1 page
    ...section(7, [2, ...name('mem'), 2, 0, ...name('convert'), 0, 0]),
    ...section(10, [1, ...body()]),
  ]);
}

interface Kernel {
  memory: WebAssembly.Memory;
  convert(src: number, dst: number, n: number, scale: number): void;
}

let kernel: Kernel | null | undefined;

/** The SIMD kernel, or null where WebAssembly SIMD is unavailable. */
export function simdKernel(): Kernel | null {
  if (kernel === undefined) {
    try {
      const instance = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes() as Uint8Array<ArrayBuffer>));
      kernel = {
        memory: instance.exports.mem as WebAssembly.Memory,
        convert: instance.exports.convert as Kernel['convert'],
      };
    } catch {
      kernel = null;
    }
  }
  return kernel;
}

/**
 * Converts `rows` rows of `d` halves, row k starting at halves[starts[k]], into out[k*d..] times
 * `scale`. Returns false (nothing done) when SIMD is unavailable or d is not a multiple of 8.
 */
export function halfRowsToFloatSimd(
  halves: Uint16Array,
  starts: ArrayLike<number>,
  d: number,
  out: Float32Array,
  scale: number,
): boolean {
  const k = simdKernel();
  if (!k || d % 8 !== 0) return false;
  const rows = starts.length;
  const n = rows * d;
  const need = n * 6; // halves in, floats out
  const have = k.memory.buffer.byteLength;
  if (need > have) k.memory.grow(Math.ceil((need - have) / 65536));
  const src = new Uint16Array(k.memory.buffer, 0, n);
  if (d >= 256) for (let r = 0; r < rows; r++) src.set(halves.subarray(starts[r], starts[r] + d), r * d);
  else {
    // Short rows: a plain copy beats creating a subarray view per row (the demo's rows are 64 wide).
    for (let r = 0; r < rows; r++)
      for (let i = 0, from = starts[r], to = r * d; i < d; i++) src[to + i] = halves[from + i];
  }
  k.convert(0, n * 2, n, scale);
  out.set(new Float32Array(k.memory.buffer, n * 2, n));
  return true;
}
