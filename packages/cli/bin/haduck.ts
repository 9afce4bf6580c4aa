#!/usr/bin/env bun
console.log("haduck");
