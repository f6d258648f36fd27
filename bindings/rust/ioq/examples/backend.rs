//! Prints the backend a default loop gets (honouring IOQ_BACKEND), or the error.
fn main() {
    match ioq::Loop::new() {
        Ok(lp) => println!("{}", lp.backend()),
        Err(e) => {
            println!("error {}", e.name());
            std::process::exit(1);
        }
    }
}
