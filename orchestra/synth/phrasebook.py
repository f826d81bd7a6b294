"""Prose for the Booking.com tools: several phrasings per function, for the offline realiser.

This is data for one ecosystem, keyed by function name. A phrasing names, in braces, parameters
whose values it states; it is used only when each of those is an independent argument of the step
(the realiser prefers the phrasing that states the most). A phrasing with no braces suits a step
whose identifying arguments come from an earlier response ("that hotel"). Functions not listed here,
and steps no phrasing fits, get the generic phrasing built from the tool schema.
"""

BOOKING: dict[str, list[str]] = {
    "Search_Attraction_Location": [
        "find attraction destinations and products for {query}",
        "look up {query} on the attractions search",
        "identify {query} as a destination for sightseeing",
    ],
    "Search_Attractions": [
        "list the attractions there sorted by {sortBy}",
        "show things to do at that destination, ordered by {sortBy}",
        "list the attractions at that destination",
    ],
    "Get_Attraction_Details": [
        "get the full details of that attraction",
        "pull up the description, prices and reviews of that attraction",
        "get the details of the attraction {slug}",
    ],
    "Get_Availability": [
        "check ticket availability for that attraction on {date}",
        "check whether that attraction has tickets on {date}",
        "check ticket availability for that attraction",
    ],
    "Get_Availability_Calendar": [
        "show the availability calendar of that attraction",
        "see which days that attraction can be booked",
    ],
    "Get_Popular_Attraction_Near_By": [
        "find popular attractions near that property",
        "list the sights close to that property",
    ],
    "Search_Car_Location": [
        "find the car rental location for {query}",
        "look up {query} as a place to pick up a rental car",
    ],
    "Search_Car_Rentals": [
        "search rental cars picked up on {pick_up_date} at {pick_up_time} and returned on {drop_off_date} "
        "at {drop_off_time}",
        "find car rentals from {pick_up_date} {pick_up_time} until {drop_off_date} {drop_off_time}",
        "search for car rentals for those places and times",
    ],
    "Vehicle_Details": [
        "get the details of that car",
        "show me more about that vehicle",
    ],
    "Vehicle_Supplier_Details": [
        "get information about the supplier of that vehicle",
        "tell me who rents out that car",
    ],
    "Vehicle_Supplier_Ratings": [
        "show the supplier ratings for that car",
        "check how the rental company of that car is rated",
    ],
    "Vehicle_Supplier_Review": [
        "show reviews of that car's rental company",
        "read what customers say about the supplier of that car",
    ],
    "Booking_Summary": [
        "get the booking summary for that car",
        "summarise what booking that vehicle would include",
    ],
    "Get_Packages": [
        "check the rental packages and insurance prices for that car",
        "compare the protection packages offered with that vehicle",
    ],
    "Search_Flight_Location": [
        "find the airport for {query}",
        "look up flight locations matching {query}",
    ],
    "Search_Flights": [
        "search flights between those places departing {departDate} and returning {returnDate}",
        "search flights between those places on {departDate}",
        "search flights between those places",
    ],
    "Search_Flights_Multi_Stops": [
        "search multi-stop flights for the legs {legs}",
        "find itineraries covering the legs {legs}",
    ],
    "Get_Min_Price": [
        "find the cheapest fares around {departDate}",
        "check the lowest flight prices near {departDate} for that route",
        "check the lowest flight prices for that route",
    ],
    "Get_Min_Price_Multi_Stops": [
        "find the lowest prices for the multi-stop legs {legs}",
        "check the cheapest dates for the legs {legs}",
    ],
    "Get_Flight_Details": [
        "get the details of that flight offer",
        "show the baggage, meals and price breakdown of that flight",
    ],
    "Get_Seat_Map": [
        "show the seat map for that flight",
        "check which seats are free on that flight",
    ],
    "Get_Nearby_Cities": [
        "find cities near latitude {latitude}, longitude {longitude}",
        "find cities close to those coordinates",
    ],
    "Location_to_Lat_Long": [
        "get the coordinates of {query}",
        "find the latitude and longitude of {query}",
    ],
    "Search_Hotel_Destination": [
        "find places to stay matching {query}",
        "look up {query} on the accommodation search",
    ],
    "Search_Hotels": [
        "search places to stay there from {arrival_date} to {departure_date}",
        "find accommodation for a stay from {arrival_date} to {departure_date}",
        "search places to stay there",
    ],
    "Search_Hotels_By_Coordinates": [
        "search places to stay around there from {arrival_date} to {departure_date}",
        "find accommodation near that spot for {arrival_date} to {departure_date}",
    ],
    "Get_Filter": [
        "get the available search filters for a stay from {arrival_date} to {departure_date}",
        "list the filters I can use for that search",
    ],
    "Get_Hotel_Details": [
        "get the details of that property",
        "show me more about that property",
    ],
    "Get_Hotel_Policies": [
        "get the policies of that property",
        "check the house rules of that property",
    ],
    "Get_Hotel_Review_Scores": [
        "get the review scores of that property",
        "check how guests rate that property",
    ],
    "Get_Hotel_Reviews_Tips": [
        "read the reviews and tips for that property",
        "show what guests wrote about that property",
    ],
    "Get_Hotel_Reviews_Tips__Sort_Option": [
        "list the ways to sort the reviews of that property",
        "get the sort options for that property's reviews",
    ],
    "Get_Room_Availability": [
        "check room prices and availability of that property between {min_date} and {max_date}",
        "check room prices and availability of that property",
    ],
    "Get_Room_List_With_Availability": [
        "list the rooms of that property free from {arrival_date} to {departure_date}",
        "list the rooms available at that property",
    ],
    "Payment_features_of_the_Hotel": [
        "check which payment options that property accepts",
        "find out how I can pay at that property",
    ],
    "Property_Children_Policies": [
        "check the children policies of that property",
        "find out whether that property suits kids",
    ],
    "Get_Description_And_Info": [
        "get the description of that property",
        "tell me about that property",
    ],
    "Get_Question_And_Answer": [
        "show the questions and answers about that property",
        "see what other travellers asked about that property",
    ],
    "Taxi_Search_Location": [
        "find the taxi pick-up point for {query}",
        "look up {query} for a taxi ride",
    ],
    "Search_Taxi": [
        "find a taxi between those places on {pick_up_date} at {pick_up_time}",
        "book a ride between those two places at {pick_up_time} on {pick_up_date}",
        "find a taxi between those places",
    ],
}
