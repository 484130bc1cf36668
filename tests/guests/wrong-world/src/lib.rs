//! `wrong-world`: a valid WebAssembly component of a world that is not
//! `mailroom:plugin/handler` (it exports `greet` from `wit/greeter.wit`), so
//! the host must reject it with a clear error.

wit_bindgen::generate!({ world: "greeter", path: "wit" });

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("Hello, {name}!")
    }
}

export!(Greeter);
