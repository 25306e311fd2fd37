//! The `bootstrap` command-line entry point (thin: parse, resolve, run).

fn main() {
    println!("bootstrap: not yet implemented");
}
