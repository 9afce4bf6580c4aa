import { test } from "bun:test";
import { dirtyBitmapTests } from "./_dirty_bitmap_contract.ts";

dirtyBitmapTests(test);
