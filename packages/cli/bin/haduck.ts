#!/usr/bin/env bun
import { main } from "../_main.ts";

process.exit(await main(process.argv.slice(2)));
