//! bootstrap: EKS Pod Identity + Secrets Store CSI in one command, verified, and undone exactly.
//!
//! Layers, from pure to networked: [`render`], [`plan`] and [`diagnose`] know nothing of the
//! network; [`aws`] and [`kube`] wrap clients, [`interp`] executes operations on them;
//! [`target`] and [`resources`] observe and plan; [`commands`] compose; `main` dispatches.
//! Imports go only downward (`commands` → `interp` → `resources` → `target` → `plan` →
//! `error` → `kube` → `render`; [`config`] → [`cli`], [`teams`]): `diagnose` sits beside
//! `plan` and `render`, its facts filled by the readers of [`resources`] and handed to its
//! rules by the commands; [`service_account`] is a value every layer may use and imports
//! nothing. `module_graph_tests` fails on an import cycle.

pub mod aws;
pub mod cli;
pub mod commands;
pub mod config;
pub mod diagnose;
pub mod error;
pub mod image;
pub mod interp;
pub mod kube;
pub mod plan;
pub mod render;
pub mod resources;
pub mod service_account;
pub mod target;
pub mod teams;
pub mod ui;

#[cfg(test)]
#[path = "module_graph_tests.rs"]
mod module_graph_tests;
