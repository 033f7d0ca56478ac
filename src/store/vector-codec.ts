/**
 * pgvector's binary wire format (vector_recv): int16 dimensions, int16 unused, then float4
 * big-endian values. node-postgres sends a Buffer parameter in binary format as it is.
 */
export function encodeVector(vector: number[]): Buffer {
  const buf = Buffer.allocUnsafe(4 + vector.length * 4);
  writeVector(buf, 0, vector);
  return buf;
}

/**
 * A one-dimensional `vector[]` in Postgres' binary array format (array_recv): ndim, has-nulls,
 * element oid, length, lower bound, then each element as int32 length + its binary form.
 */
export function encodeVectorArray(vectors: number[][], vectorOid: number): Buffer {
  const size = vectors.reduce((n, v) => n + 4 + 4 + v.length * 4, 20);
  const buf = Buffer.allocUnsafe(size);
  buf.writeInt32BE(1, 0);
  buf.writeInt32BE(0, 4);
  buf.writeUInt32BE(vectorOid, 8);
  buf.writeInt32BE(vectors.length, 12);
  buf.writeInt32BE(1, 16);
  let offset = 20;
  for (const v of vectors) {
    buf.writeInt32BE(4 + v.length * 4, offset);
    offset = writeVector(buf, offset + 4, v);
  }
  return buf;
}

function writeVector(buf: Buffer, start: number, vector: number[]): number {
  buf.writeInt16BE(vector.length, start);
  buf.writeInt16BE(0, start + 2);
  let offset = start + 4;
  for (const x of vector) {
    buf.writeFloatBE(x, offset);
    offset += 4;
  }
  return offset;
}

/** The text form, for PGlite (its parameters are text): `[1,2,3]`. */
export function vectorText(vector: number[]): string {
  return `[${vector.join(',')}]`;
}

/** A text array literal of vectors: `{"[1,2]","[3,4]"}`. */
export function vectorArrayText(vectors: number[][]): string {
  return `{${vectors.map((v) => `"${vectorText(v)}"`).join(',')}}`;
}
