//! Fuzzing target `proc_net_tcp` for cargo-afl (see `routewarden_fuzz::run`).

fn main() {
    afl::fuzz!(|data: &[u8]| routewarden_fuzz::run("proc_net_tcp", data));
}
