/** The slot function ioredis routes with (the package ships no types). */
declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot (0 to 16383) of a key, honouring its hash tag. */
  export default function calculateSlot(key: string | Buffer): number;
}
