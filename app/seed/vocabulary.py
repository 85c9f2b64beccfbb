"""Demo-data vocabulary: real-sounding words, so that searching the seeded catalog means something."""

from __future__ import annotations

# category name → the nouns of things sold in it
CATEGORIES: dict[str, tuple[str, ...]] = {
    "Kitchen": ("Chef Knife", "Cutting Board", "Saucepan", "Skillet", "Kettle", "Colander", "Mixing Bowl",
                "Spatula", "Coffee Grinder", "French Press", "Dutch Oven", "Measuring Cups"),
    "Lighting": ("Desk Lamp", "Floor Lamp", "Pendant Light", "Wall Sconce", "String Lights", "Reading Light",
                 "Lantern", "Nightlight", "Ceiling Fixture"),
    "Outdoor": ("Tent", "Sleeping Bag", "Camping Stove", "Hiking Backpack", "Trekking Poles", "Hammock",
                "Cooler", "Headlamp", "Water Filter", "Folding Chair"),
    "Office": ("Notebook", "Fountain Pen", "Desk Organizer", "Office Chair", "Standing Desk", "Monitor Stand",
               "Letter Tray", "Stapler", "Whiteboard"),
    "Audio": ("Headphones", "Earbuds", "Bookshelf Speaker", "Soundbar", "Turntable", "Portable Speaker",
              "Microphone", "Amplifier"),
    "Fitness": ("Yoga Mat", "Dumbbell Set", "Kettlebell", "Resistance Bands", "Jump Rope", "Foam Roller",
                "Exercise Bike", "Pull-up Bar"),
    "Bedding": ("Duvet Cover", "Pillow", "Fitted Sheet", "Weighted Blanket", "Quilt", "Mattress Topper",
                "Throw Blanket"),
    "Bath": ("Bath Towel", "Shower Curtain", "Bath Mat", "Soap Dispenser", "Toothbrush Holder", "Bathrobe"),
    "Garden": ("Watering Can", "Pruning Shears", "Garden Hose", "Planter", "Trowel", "Raised Bed",
               "Compost Bin", "Bird Feeder"),
    "Tools": ("Cordless Drill", "Screwdriver Set", "Hammer", "Tape Measure", "Socket Wrench", "Level",
              "Utility Knife", "Workbench"),
    "Travel": ("Carry-on Suitcase", "Packing Cubes", "Travel Pillow", "Passport Wallet", "Duffel Bag",
               "Luggage Tag", "Toiletry Bag"),
    "Kids": ("Building Blocks", "Puzzle", "Plush Bear", "Kids Backpack", "Art Easel", "Balance Bike",
             "Picture Book"),
    "Pets": ("Dog Bed", "Cat Tree", "Leash", "Pet Bowl", "Chew Toy", "Litter Box", "Pet Carrier"),
    "Tableware": ("Dinner Plate", "Wine Glass", "Coffee Mug", "Serving Bowl", "Flatware Set", "Teapot",
                  "Tumbler"),
    "Storage": ("Storage Bin", "Shoe Rack", "Bookcase", "Coat Hook", "Drawer Organizer", "Laundry Basket"),
    "Electronics": ("Phone Charger", "USB-C Hub", "Power Bank", "Smart Plug", "Webcam", "Mechanical Keyboard",
                    "Wireless Mouse", "E-Reader"),
}

ADJECTIVES = (
    "Classic", "Compact", "Ergonomic", "Lightweight", "Heavy-Duty", "Minimalist", "Rustic", "Modern",
    "Vintage", "Premium", "Everyday", "Foldable", "Waterproof", "Insulated", "Adjustable", "Portable",
    "Handcrafted", "Cordless", "Slim", "Oversized", "Quiet", "Rechargeable", "Stackable", "Nordic",
)

MATERIALS = (
    "Walnut", "Oak", "Bamboo", "Stainless Steel", "Cast Iron", "Ceramic", "Linen", "Cotton", "Wool",
    "Leather", "Recycled Plastic", "Aluminum", "Copper", "Glass", "Canvas", "Cork", "Marble", "Brass",
)

BRANDS = (
    "Northwind", "Harbor & Pine", "Alder", "Kestrel", "Fjordline", "Oakhurst", "Bluefield", "Maple Row",
    "Summit Co", "Linden", "Ironbark", "Saltmarsh", "Greywell", "Juniper", "Copperleaf", "Tidewater",
)

FEATURES = (
    "built to last for years of daily use", "easy to clean and dishwasher safe", "backed by a five-year warranty",
    "designed with a soft-touch grip", "finished by hand in small batches", "tested for durability outdoors",
    "made from responsibly sourced materials", "ships in plastic-free packaging", "folds flat for storage",
    "comes with a canvas carry pouch", "resists scratches and stains", "quiet in operation",
    "charges over USB-C in two hours", "weighs less than you would expect", "fits small apartments",
    "pairs with the rest of the collection",
)

AUDIENCES = (
    "home cooks", "campers", "students", "remote workers", "families", "travellers", "gardeners",
    "weekend builders", "pet owners", "music lovers", "early risers", "small spaces",
)
