/**
 * @module
 * `@haduck/s3-block-store`: a small, runtime-neutral (Bun, Deno, Node) object-store client for
 * blocks, segments and manifests. One `BlockStore` interface, two implementations: S3 (SigV4 via
 * aws4fetch, keys fixed or from the AWS credential chain, conditional writes, ranged reads,
 * multipart, one retry policy) and a local directory.
 *
 * @example
 * ```ts
 * import { openStore } from "@haduck/s3-block-store";
 * const store = openStore("file:///tmp/haduck-example");
 * await store.put("greeting", new TextEncoder().encode("hello"), { ifNoneMatch: "*" }).catch(() => {});
 * console.log(new TextDecoder().decode(await store.get("greeting")));
 * ```
 */
export type {
  BlockStore,
  GetOptions,
  ListOptions,
  ObjectInfo,
  PutOptions,
  PutResult,
  StoreCapabilities,
} from "./_types.ts";
export { S3BlockStore, type S3BlockStoreOptions } from "./_s3_store.ts";
export { FsBlockStore } from "./_fs_store.ts";
export { AWS_ENV, hasS3Env, openStore, S3_ENV, s3OptionsFromEnv } from "./_config.ts";
export type { CredentialsProvider, S3Credentials } from "./_credentials.ts";
export { awsCredentialChain } from "./_aws_chain.ts";
export { ENCRYPTION_ENV, Keyring, parseKey } from "./_keyring.ts";
export {
  type ResealOutcome,
  SealedStore,
  sealedStoreFromEnv,
  type SealedStoreOptions,
  staysPlain,
} from "./_sealed_store.ts";
export { rekey, type RekeyOptions, type RekeyReport } from "./_rekey.ts";
export {
  keyIdOf,
  openSealed,
  plainSizeBytes,
  seal,
  SEAL_CHUNK_BYTES,
  SEAL_HEADER_BYTES,
  sealedSizeBytes,
  type SealKey,
  sealKey,
} from "./_seal_format.ts";
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./_retry.ts";
export { bytesEqual, sha256Hex } from "./_digest.ts";
export { probeCapabilities } from "./_probe.ts";
export {
  AccessDeniedError,
  BlockNotFoundError,
  ChecksumMismatchError,
  EncryptionKeyError,
  InvalidResponseError,
  NoSuchBucketError,
  NotSealedError,
  PreconditionFailedError,
  StoreConfigError,
  StoreError,
  type StoreErrorCode,
  StoreTimeoutError,
  StoreUnavailableError,
  UnknownOutcomeError,
} from "./_errors.ts";
