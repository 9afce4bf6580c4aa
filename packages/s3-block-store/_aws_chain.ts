/**
 * @module
 * The AWS credential chain, as the AWS SDK itself resolves it (`@aws-sdk/credential-provider-node`):
 * `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, `AWS_PROFILE` in the shared
 * config and credentials files, `credential_process`, SSO, web identity, container credentials
 * (`AWS_CONTAINER_CREDENTIALS_FULL_URI`/`_RELATIVE_URI`) and instance metadata (IMDSv2, at
 * `AWS_EC2_METADATA_SERVICE_ENDPOINT`). The SDK is imported on the first fetch only, so a store
 * with fixed keys never loads it and never touches the network for credentials. The chain reads
 * the process's own environment, as the SDK does everywhere.
 */
import type { CredentialsProvider, S3Credentials } from "./_credentials.ts";
import { StoreConfigError, StoreUnavailableError } from "./_errors.ts";

/**
 * How long one request to the instance metadata or container endpoint may take, and how often it
 * is retried: on a machine without either, the chain gives up within a few seconds rather than
 * hanging (the metadata service answers in milliseconds where it exists).
 */
export const AWS_CHAIN_HTTP_TIMEOUT_MS = 1000;
export const AWS_CHAIN_HTTP_RETRIES = 1;

/** Where the chain looks, in its order, for the message that says none had credentials. */
export const AWS_CHAIN_SOURCES = [
  "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN)",
  "the profile AWS_PROFILE names (else default) in ~/.aws/credentials and ~/.aws/config " +
  "(AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE), including credential_process, SSO and role_arn",
  "AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN",
  "container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI or _RELATIVE_URI)",
  "instance metadata (IMDSv2; AWS_EC2_METADATA_SERVICE_ENDPOINT, or AWS_EC2_METADATA_DISABLED=true to skip it)",
];

/** The SDK's record of which source answered (`$source`), in words. */
export function describeSource(credentials: S3Credentials): string {
  const features = Object.keys((credentials as { $source?: Record<string, string> }).$source ?? {});
  const has = (part: string) => features.some((feature) => feature.includes(part));
  if (has("SSO")) return "AWS SSO";
  if (has("WEB_ID")) return "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)";
  if (has("PROCESS")) return "credential_process";
  if (has("PROFILE")) return "the AWS profile (shared config and credentials files)";
  if (has("ENV_VARS")) return "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
  if (has("HTTP")) return "container credentials";
  return "the AWS credential chain";
}

/**
 * The AWS SDK's default credential chain as a `CredentialsProvider`; `profile` overrides
 * `AWS_PROFILE`.
 *
 * @example
 * ```ts
 * import { awsCredentialChain } from "./_aws_chain.ts";
 * const provider = awsCredentialChain({ profile: "backups" });
 * ```
 */
export function awsCredentialChain(options: { profile?: string } = {}): CredentialsProvider {
  let provider: CredentialsProvider | undefined;
  return async (fetchOptions) => {
    if (!provider) {
      const { defaultProvider } = await import("@aws-sdk/credential-provider-node");
      provider = defaultProvider({ profile: options.profile, timeout: AWS_CHAIN_HTTP_TIMEOUT_MS,
        maxRetries: AWS_CHAIN_HTTP_RETRIES }) as CredentialsProvider;
    }
    return await provider(fetchOptions);
  };
}

/**
 * The error a failed chain becomes: on the first fetch a configuration error listing every source
 * tried and the fix; on a refresh (keys were held) a retryable one, as the source may be back soon.
 */
export function chainError(error: unknown, held: boolean, where: string, endpointHint = ""): Error {
  const detail = error instanceof Error ? error.message.split("\n")[0] : String(error);
  if (held) {
    return new StoreUnavailableError(`Cannot refresh the AWS credentials of ${where}: ${detail}`, error);
  }
  const generic = /could not load credentials from any providers/i.test(detail);
  return new StoreConfigError(`Cannot find credentials for ${where}: HADUCK_S3_ACCESS_KEY and ` +
    `HADUCK_S3_SECRET_KEY are not set, and the AWS credential chain found none` +
    `${generic ? "" : ` (${detail})`}. Tried: ${AWS_CHAIN_SOURCES.join("; ")}. ` +
    "Set HADUCK_S3_ACCESS_KEY and HADUCK_S3_SECRET_KEY, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, " +
    `or AWS_PROFILE${endpointHint}`, { cause: error });
}
