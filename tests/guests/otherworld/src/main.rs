//! A plain WASI program: a real component, but of the `wasi:cli/command`
//! world, with no `describe` or `handle`. Deploying it as a command must be
//! refused, and the old version must keep serving.

fn main() {
    println!("hello from another world");
}
