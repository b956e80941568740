#!/usr/bin/env node
import "../dist/cli/run-main.js";
