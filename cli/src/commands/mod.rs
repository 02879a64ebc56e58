//! One file per command group; each turns its arguments into calls of the `etl` and `jobs`
//! libraries and prints the outcome.

pub mod alerts;
pub mod analyst;
pub mod audit;
pub mod backup;
pub mod connection;
pub mod dataset;
pub mod deletion;
pub mod demo;
pub mod doctor;
pub mod evaluator;
pub mod jobs;
pub mod key;
pub mod migrate;
pub mod org;
pub mod output;
pub mod price;
pub mod project;
pub mod prompt;
pub mod search;
pub mod serve;
pub mod user;
