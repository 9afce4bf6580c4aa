import { dirtyBitmapTests } from "./_dirty_bitmap_contract.ts";

dirtyBitmapTests((name, fn) => Deno.test(name, fn));
