//! ClickHouse's `Native` format: Arrow → Native for inserts on servers without `ArrowStream`
//! input (18.16), and Native → Arrow for exports and jobs (18.16 has no Arrow output).

pub mod decode;
mod encode;

pub use encode::{clickhouse_type, encode, encode_block};
