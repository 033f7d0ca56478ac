import type { Embedder } from '../src/llm/embedder.js';

/**
 * Deterministic embeddings with structure, so that nearest neighbours mean something (uniform
 * random vectors have none, and no index finds their neighbours): `topics` random unit centroids;
 * a memory or a query is its topic's centroid plus noise of the same norm, normalised. Memory
 * texts are `t<topic> u<user> i<index>`, query texts `q t<topic> s<seed>`; no model is called.
 * Every memory vector is generated up front (float32) and is also the brute-force truth.
 */
export class BenchData implements Embedder {
  readonly centroids: Float32Array[];
  readonly vectors: Float32Array;

  constructor(
    readonly users: number,
    readonly per: number,
    readonly dimensions: number,
    readonly topics: number,
  ) {
    this.centroids = Array.from({ length: topics }, (_, t) =>
      normalise(noise(0x9e3779b9 ^ (t * 7919 + 1), dimensions)),
    );
    this.vectors = new Float32Array(users * per * dimensions);
  }

  topicOf(u: number, i: number): number {
    return hash(u * 1_000_003 + i) % this.topics;
  }

  memoryText(u: number, i: number): string {
    return `t${this.topicOf(u, i)} u${u} i${i}`;
  }

  /** Every memory's vector, computed before the timed load (a model's time is not the store's). */
  generate(): void {
    for (let u = 0; u < this.users; u++) {
      for (let i = 0; i < this.per; i++)
        this.vectors.set(
          this.point(this.topicOf(u, i), hash(u * 1_000_003 + i) ^ 0x5bd1e995),
          (u * this.per + i) * this.dimensions,
        );
    }
  }

  async embed(texts: string[]): Promise<number[][]> {
    return texts.map((text) => {
      const m = /^t(\d+) u(\d+) i(\d+)$/.exec(text);
      if (m) {
        const [u, i] = [Number(m[2]), Number(m[3])];
        const at = (u * this.per + i) * this.dimensions;
        // A view, not a copy: the store only reads the numbers.
        if (u < this.users && i < this.per)
          return this.vectors.subarray(at, at + this.dimensions) as unknown as number[];
        return Array.from(this.point(Number(m[1]), hash(u * 1_000_003 + i) ^ 0x5bd1e995));
      }
      const q = /^q t(\d+) s(\d+)$/.exec(text);
      if (!q) throw new Error(`bench embedder cannot embed ${JSON.stringify(text)}`);
      return Array.from(this.point(Number(q[1]), hash(Number(q[2]) + 0x51ed27)));
    });
  }

  /** Indexes (u * per + i) of the k memories most similar to `query`, among users [from, to). */
  topK(query: number[], k: number, from = 0, to = this.users): number[] {
    const D = this.dimensions;
    const best: { id: number; score: number }[] = [];
    for (let id = from * this.per; id < to * this.per; id++) {
      let dot = 0;
      const off = id * D;
      for (let d = 0; d < D; d++) dot += (query[d] as number) * (this.vectors[off + d] as number);
      if (best.length < k || dot > (best[best.length - 1] as { score: number }).score) {
        best.push({ id, score: dot });
        best.sort((a, b) => b.score - a.score);
        if (best.length > k) best.pop();
      }
    }
    return best.map((b) => b.id);
  }

  private point(topic: number, seed: number): Float32Array {
    const c = this.centroids[topic % this.topics] as Float32Array;
    const n = normalise(noise(seed, this.dimensions));
    for (let d = 0; d < n.length; d++) n[d] = (n[d] as number) + (c[d] as number);
    return normalise(n);
  }
}

function noise(seed: number, dims: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(dims);
  for (let d = 0; d < dims; d++) {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[d] = ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  }
  return out;
}

/** In place. */
function normalise(v: Float32Array): Float32Array {
  let n = 0;
  for (let d = 0; d < v.length; d++) n += (v[d] as number) * (v[d] as number);
  n = Math.sqrt(n);
  for (let d = 0; d < v.length; d++) v[d] = (v[d] as number) / n;
  return v;
}

function hash(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  return (h ^ (h >>> 16)) >>> 0;
}
