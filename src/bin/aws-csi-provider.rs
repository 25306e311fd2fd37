//! The `aws-csi-provider` daemon entry point (thin).

fn main() {
    println!("aws-csi-provider: not yet implemented");
}
