#!/usr/bin/env node
// The `wx` command. Compiled code lives in dist/ (built by `npm install`).
import '../dist/cli/wx.js';
