fn main() -> std::process::ExitCode {
    meshpay::cli::main()
}
