/**
 * Every vector goes to Postgres at unit length, stored or queried. Each distance the store takes
 * is cosine (`<=>`, see knn.ts), which a vector's length does not change, so nothing ranks or
 * scores otherwise; but each element is then within [-1, 1], which `halfvec` (at most 65,504)
 * holds whatever scale an embedder answers in. Stored as given, an element between 65,504 and a
 * float4's limit passed the embedder's checks (answers.ts) and then failed the whole commit
 * under STORE_VECTOR_STORAGE=half. A zero vector stays as it is (it has no direction).
 */
function unitScale(vector: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < vector.length; i++) sum += (vector[i] as number) ** 2;
  // Squares of float4-range elements stay finite in a double (at most about 1.2e77 each).
  return sum > 0 ? 1 / Math.sqrt(sum) : 1;
}

/**
 * pgvector's binary wire format (vector_recv): int16 dimensions, int16 unused, then float4
 * big-endian values. node-postgres sends a Buffer parameter in binary format as it is.
 */
export function encodeVector(vector: ArrayLike<number>): Buffer {
  const buf = Buffer.allocUnsafe(4 + vector.length * 4);
  writeVector(new DataView(buf.buffer, buf.byteOffset, buf.byteLength), 0, vector);
  return buf;
}

/**
 * A one-dimensional `vector[]` in Postgres' binary array format (array_recv): ndim, has-nulls,
 * element oid, length, lower bound, then each element as int32 length + its binary form.
 */
export function encodeVectorArray(vectors: ArrayLike<number>[], vectorOid: number): Buffer {
  let size = 20;
  for (const v of vectors) size += 8 + v.length * 4;
  const buf = Buffer.allocUnsafe(size);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  view.setInt32(0, 1);
  view.setInt32(4, 0);
  view.setUint32(8, vectorOid);
  view.setInt32(12, vectors.length);
  view.setInt32(16, 1);
  let offset = 20;
  for (const v of vectors) {
    view.setInt32(offset, 4 + v.length * 4);
    offset = writeVector(view, offset + 4, v);
  }
  return buf;
}

// DataView, not Buffer.writeFloatBE: about 3x faster per float, which shows at 1,536 floats
// per vector and thousands of vectors per second.
function writeVector(view: DataView, start: number, vector: ArrayLike<number>): number {
  view.setInt16(start, vector.length);
  view.setInt16(start + 2, 0);
  let offset = start + 4;
  const scale = unitScale(vector);
  for (let i = 0; i < vector.length; i++) {
    view.setFloat32(offset, (vector[i] as number) * scale);
    offset += 4;
  }
  return offset;
}

/** The text form, for PGlite (its parameters are text): `[1,2,3]`. */
export function vectorText(vector: ArrayLike<number>): string {
  const scale = unitScale(vector);
  return `[${Array.from(vector, (x) => x * scale).join(',')}]`;
}

/** A text array literal of vectors: `{"[1,2]","[3,4]"}`. */
export function vectorArrayText(vectors: ArrayLike<number>[]): string {
  return `{${vectors.map((v) => `"${vectorText(v)}"`).join(',')}}`;
}
