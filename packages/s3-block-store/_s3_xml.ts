/**
 * @module
 * The few S3 XML documents the store reads and writes. S3's XML is flat and regular; a small,
 * strict extractor is enough, and anything that does not parse is reported as "not S3".
 */
import { InvalidResponseError } from "./_errors.ts";
import type { ObjectInfo } from "./_types.ts";

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** Unescapes XML entities; a character reference outside Unicode is malformed XML: InvalidResponseError. */
export function xmlUnescape(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (whole, entity: string) => {
    if (!entity.startsWith("#")) return ENTITIES[entity];
    const code = entity.startsWith("#x") ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10);
    if (!(code >= 0 && code <= 0x10ffff)) {
      throw new InvalidResponseError(`the server sent malformed XML (character reference ${whole})`);
    }
    return String.fromCodePoint(code);
  });
}

export function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&${Object.entries(ENTITIES).find(([, value]) => value === char)![0]};`);
}

/** The text of the first `<tag>` in `xml`, unescaped; `undefined` when absent. */
export function xmlTag(xml: string, tag: string): string | undefined {
  const match = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(xml);
  return match ? xmlUnescape(match[1]) : undefined;
}

function xmlBlocks(xml: string, tag: string): string[] {
  return [...xml.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))].map((match) => match[1]);
}

export function unquoteEtag(etag: string | null | undefined): string {
  return (etag ?? "").replace(/^W\//, "").replace(/^"|"$/g, "");
}

export interface ListPage {
  objects: ObjectInfo[];
  nextContinuationToken?: string;
}

/** Parses a ListObjectsV2 result requested with `encoding-type=url`. Returns undefined if it is not one. */
export function parseListPage(xml: string, stripPrefix: string): ListPage | undefined {
  if (!xml.includes("<ListBucketResult")) return undefined;
  const urlEncoded = xmlTag(xml, "EncodingType") === "url";
  const decode = (key: string) => {
    try {
      return urlEncoded ? decodeURIComponent(key.replace(/\+/g, " ")) : key;
    } catch {
      throw new InvalidResponseError(`the server listed a key that is not URL-encoded: ${JSON.stringify(key.slice(0, 100))}`);
    }
  };
  const objects = xmlBlocks(xml, "Contents").map((block) => {
    const key = decode(xmlTag(block, "Key") ?? "");
    const modified = xmlTag(block, "LastModified");
    return {
      key: key.slice(stripPrefix.length),
      sizeBytes: Number(xmlTag(block, "Size") ?? "0"),
      etag: unquoteEtag(xmlTag(block, "ETag")),
      lastModified: modified ? new Date(modified) : undefined,
    };
  });
  const truncated = xmlTag(xml, "IsTruncated") === "true";
  return { objects, nextContinuationToken: truncated ? xmlTag(xml, "NextContinuationToken") : undefined };
}

/** The S3 error code and message of an error body, if it is one. */
export function parseErrorBody(xml: string): { code?: string; message?: string } {
  if (!xml.includes("<Error")) return {};
  return { code: xmlTag(xml, "Code"), message: xmlTag(xml, "Message") };
}

export function deleteObjectsBody(fullKeys: string[]): string {
  const objects = fullKeys.map((key) => `<Object><Key>${xmlEscape(key)}</Key></Object>`).join("");
  return `<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>${objects}</Delete>`;
}

/** Keys that a DeleteObjects result reports as failed, with their codes. */
export function parseDeleteErrors(xml: string): { key: string; code: string }[] {
  return xmlBlocks(xml, "Error").map((block) => ({ key: xmlTag(block, "Key") ?? "", code: xmlTag(block, "Code") ?? "" }));
}

export function completeMultipartBody(etags: string[]): string {
  const parts = etags.map((etag, index) => `<Part><PartNumber>${index + 1}</PartNumber><ETag>"${etag}"</ETag></Part>`);
  return `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload>${parts.join("")}</CompleteMultipartUpload>`;
}
