/**
 * @module
 * Multipart upload for large objects: initiate, upload parts (bounded by the store's limiter),
 * complete; on any failure the upload is aborted so no orphaned parts stay behind.
 */
import { InvalidResponseError } from "./_errors.ts";
import { completeMultipartBody, unquoteEtag, xmlTag } from "./_s3_xml.ts";
import type { S3BlockStore } from "./_s3_store.ts";

export async function putMultipart(
  store: S3BlockStore,
  key: string,
  body: Uint8Array,
  signal?: AbortSignal,
): Promise<string> {
  const initiated = await store.request({ method: "POST", key, query: { uploads: "" }, signal,
    operation: `start multipart upload of ${key}` });
  const uploadId = xmlTag(new TextDecoder().decode(initiated.body), "UploadId");
  if (!uploadId) throw new InvalidResponseError(`Cannot upload ${key} to ${store.url}: no UploadId in the answer`);
  try {
    const partSize = store.multipartPartSizeBytes;
    const partCount = Math.ceil(body.byteLength / partSize);
    const etags = await Promise.all(Array.from({ length: partCount }, async (_, index) => {
      const part = body.subarray(index * partSize, Math.min(body.byteLength, (index + 1) * partSize));
      const answer = await store.request({
        method: "PUT",
        key,
        query: { partNumber: String(index + 1), uploadId },
        body: part,
        signal,
        operation: `upload part ${index + 1} of ${partCount} of ${key}`,
      });
      return unquoteEtag(answer.headers.get("etag"));
    }));
    const completed = await store.request({
      method: "POST",
      key,
      query: { uploadId },
      headers: { "content-type": "application/xml" },
      body: new TextEncoder().encode(completeMultipartBody(etags)),
      signal,
      operation: `complete multipart upload of ${key}`,
    });
    const text = new TextDecoder().decode(completed.body);
    // S3 may answer 200 with an <Error> document for CompleteMultipartUpload.
    if (text.includes("<Error>")) {
      throw new InvalidResponseError(`Cannot complete upload of ${key}: ${xmlTag(text, "Code")}`, { retryable: false });
    }
    return unquoteEtag(xmlTag(text, "ETag"));
  } catch (error) {
    await store.request({ method: "DELETE", key, query: { uploadId }, operation: `abort multipart upload of ${key}` })
      .catch(() => {}); // the original error is what the caller needs; gc lists stale uploads
    throw error;
  }
}
